// First step of `npm run scenarios`, before anything is compiled or written:
// network namespaces, nftables and servers on port 21 need root.
if (process.getuid?.() !== 0) {
  console.log('scenarios: needs root (network namespaces, nftables, servers on port 21): run `sudo npm run scenarios`');
  process.exit(2);
}
