import { startDemoServer } from '../../src/demo/server.js';
import { reverseMatrix } from './reverse-matrix.js';

// The built-in server announcing an inside address it never listens on.
reverseMatrix('the built-in server announcing 100.64.0.2', '', async (dir) => {
  const server = await startDemoServer({ root: dir, announceAddress: '100.64.0.2' });
  return { port: server.address.port, stop: () => server.close() };
});
