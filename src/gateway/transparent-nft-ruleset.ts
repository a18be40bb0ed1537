/**
 * The nftables ruleset transparent forward mode needs (`forward
 * --print-nft`): LAN FTP control connections redirected to the gateway.
 * Text only; the admin loads it (the kernel data path's own table is
 * kernel-nat.ts's).
 */
export function transparentRedirectRuleset(lanInterface: string, port: number, kernelTable?: string): string {
  const kernel = kernelTable
    ? `# --data-path kernel: ftp-alg creates and deletes "table inet ${kernelTable}" itself
# (data connection mappings). Your forward filter must accept the connections
# it maps, e.g.  ct status dnat accept
`
    : '';
  return `# ftp-alg transparent mode: redirect LAN FTP control connections to the gateway.
# Load with: nft -f THIS_FILE   (keep your existing masquerade rule for the WAN side)
${kernel}table inet ftp_alg {
  chain prerouting {
    type nat hook prerouting priority dstnat; policy accept;
    iifname "${lanInterface}" tcp dport 21 redirect to :${port}
  }
}
`;
}
