/** HAProxy in the lab: shared by the scale-out scenario and test/e2e/backends-haproxy.test.ts. */

export const HAPROXY = '/usr/sbin/haproxy';

/** The global and defaults sections: TCP mode, as in README "Scale-out behind HAProxy". */
export function haproxyTcpDefaults(maxconn: number): string[] {
  return [
    'global',
    `  maxconn ${maxconn}`,
    'defaults',
    '  mode tcp',
    '  timeout connect 2s',
    '  timeout client 60s',
    '  timeout server 60s',
    // Under load a check can take a while: a slow check must not take every instance out.
    '  timeout check 5s',
    // A connection refused by a dead instance is retried on another.
    '  retries 2',
    '  option redispatch',
  ];
}
