/**
 * FTPS client modes: a plain mode's name behind `ftps-` is the same data
 * connection set-up over explicit FTPS (AUTH TLS, PROT P, the certificate
 * not verified). curl 7.88 has no active FTPS at all (LAB.md), so curl has
 * passive ones only.
 */
export const FTPS_MODES = {
  curl: ['ftps-pasv', 'ftps-epsv'],
  lftp: ['ftps-default', 'ftps-active'],
  ftplib: ['ftps-passive', 'ftps-pasv-strict', 'ftps-active'],
} as const;

/** `ftps-pasv` → { tls: true, mode: 'pasv' }; a plain mode as it is. */
export function splitFtpsMode(mode: string): { tls: boolean; mode: string } {
  return mode.startsWith('ftps-') ? { tls: true, mode: mode.slice('ftps-'.length) } : { tls: false, mode };
}
