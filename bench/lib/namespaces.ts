/**
 * The bench's namespaces, built in the project's one lab
 * (scenarios/lib/lab.ts): the NAT box of scenarios/lib/nat-box.ts (client —
 * gateway — server, the server with no route back), and a namespace with
 * only lo for cases that change nftables. Addresses only from the plan:
 * 100.64.0.0/10 inside, 198.18.0.0/15 outside.
 */
import { Lab } from '../../scenarios/lib/lab.js';
import { buildNatBox, setNatBoxRules, type NatBoxRules } from '../../scenarios/lib/nat-box.js';

export { destroyAllLabsSync, inNamespace, labUnavailable, removeStaleNamespaces } from '../../scenarios/lib/lab.js';
export { NAT_BOX, NAT_BOX_ADDR } from '../../scenarios/lib/nat-box.js';

/** Which ALG the box is: none, the kernel FTP helper, or lan tcp/21 redirected to a local ftp-alg. */
export type BoxAlg = Pick<NatBoxRules, 'kernelHelper' | 'redirectTo'>;

/**
 * Connections from outside that a NAT rule sent inside are forwarded too
 * (what any port forward needs): only ftp-alg's kernel data path makes such
 * DNATs here.
 */
const rulesOf = (alg: BoxAlg): NatBoxRules => ({ ...alg, dnatInbound: true });

/** The NAT box with no ALG; the caller destroys the Lab. */
export async function buildBenchNatBox(): Promise<Lab> {
  const lab = new Lab();
  try {
    await buildNatBox(lab, rulesOf({}));
    return lab;
  } catch (err) {
    await lab.destroy();
    throw err;
  }
}

/** Replaces the box's whole ruleset (tables an earlier ftp-alg left included). */
export function setBoxAlg(lab: Lab, alg: BoxAlg): Promise<void> {
  return setNatBoxRules(lab, rulesOf(alg));
}

/** One namespace "k" with only lo (up): a private loopback for cases that change nftables. */
export async function buildLoopbackNamespace(): Promise<Lab> {
  const lab = new Lab();
  try {
    await lab.addNamespace('k');
    return lab;
  } catch (err) {
    await lab.destroy();
    throw err;
  }
}
