// Opens N long-poll gets on one channel over raw sockets and exits 0 once every
// one of them has received the message "m" (exit 1 after 20 s).
import net from 'node:net';

const [port, count, channel = 'fan'] = [Number(process.argv[2]), Number(process.argv[3]), process.argv[4]];
let opened = 0;
let received = 0;
for (let i = 0; i < count; i++) {
  const socket = net.connect(port, '127.0.0.1', () => {
    socket.write(`GET /?method=get&channel=${channel}&timeout=30 HTTP/1.1\r\nHost: bench\r\n\r\n`);
    if (++opened === count) console.log(`opened ${count}`);
  });
  let answer = '';
  socket.on('data', (chunk) => {
    answer += chunk;
    if (answer.includes('"messages":["m"]') && ++received === count) {
      console.log(`all ${count} answered`);
      process.exit(0);
    }
  });
  socket.on('error', () => {});
}
setTimeout(() => {
  console.log(`timed out: ${received} of ${count} answered`);
  process.exit(1);
}, 20_000).unref();
