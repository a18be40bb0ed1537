import { needs, startPyftpdlib } from '../helpers/tools.js';
import { reverseMatrix } from './reverse-matrix.js';

// pyftpdlib announces an inside address (-n) it never listens on, as a
// server behind a NAT does: only the gateway's rewrite makes PASV work.
reverseMatrix('pyftpdlib announcing 100.64.0.2', needs('pyftpdlib', 'needs python3-pyftpdlib: run scripts/install-debian-packages.sh as root'), (dir) =>
  startPyftpdlib(dir, '100.64.0.2'),
);
