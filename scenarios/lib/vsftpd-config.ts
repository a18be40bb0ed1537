/**
 * vsftpd's configuration for a lab: anonymous read-only, strict by default
 * (refuses a PORT naming anyone but the control peer), every command and
 * reply logged. Shared by the scenario runner, the namespace tests and the
 * bench (which logs nothing: logging every reply would be part of what is
 * measured).
 */
export interface VsftpdPlace {
  address: string;
  port: number;
  /** anon_root: root-owned, not writable by the ftp user. */
  root: string;
  /** An empty root-owned folder for secure_chroot_dir. */
  emptyDir: string;
  /** The protocol log; none when undefined. */
  logPath: string | undefined;
}

export function vsftpdConfigText(p: VsftpdPlace, extra: Record<string, string> = {}): string {
  const settings: Record<string, string> = {
    listen: 'YES',
    listen_ipv6: 'NO',
    listen_address: p.address,
    listen_port: String(p.port),
    // Foreground, so that its PID is the one we track.
    background: 'NO',
    secure_chroot_dir: p.emptyDir,
    anonymous_enable: 'YES',
    anon_root: p.root,
    no_anon_password: 'YES',
    local_enable: 'NO',
    write_enable: 'NO',
    pasv_enable: 'YES',
    port_enable: 'YES',
    // With a failing connect, connect_from_port_20=YES answers "500 OOPS" instead of 425.
    connect_from_port_20: 'NO',
    ...(p.logPath === undefined
      ? { xferlog_enable: 'NO' }
      : {
          xferlog_enable: 'YES',
          xferlog_std_format: 'NO',
          // Every command and reply in the log: what reasons are checked against.
          log_ftp_protocol: 'YES',
          vsftpd_log_file: p.logPath,
        }),
    syslog_enable: 'NO',
    seccomp_sandbox: 'NO',
    // Session processes stay in the server namespace, where `ip netns pids` finds them.
    isolate_network: 'NO',
    use_localtime: 'NO',
    ...extra,
  };
  // vsftpd's parser: KEY=VALUE, no spaces, no trailing whitespace.
  return Object.entries(settings)
    .map(([k, v]) => `${k}=${v}\n`)
    .join('');
}
