// TLS with the official JavaScript client (nats.js, npm `nats`), run by tests/tls.rs against
// nats-server and natsring.
//
// Usage: node tls.mjs <url> <ca file> [--cert <client cert> --key <client key>] [--handshake-first]
//
// Connects with `tls: { caFile }` (and `certFile`, `keyFile` when given; with
// --handshake-first, `handshakeFirst: true`: the TLS handshake before the server's INFO), then
// checks over two connections: 2,000 messages of 1 KiB and 20 of 100 KiB arrive exactly,
// intact and in order, and 100 requests get their replies. Prints `ok ...` and exits 0 when
// all of that held; prints `FAIL: <what>` and exits 1 otherwise. The same checks as
// tests/clients/python/tls.py.

import { connect } from "nats";

const TIMEOUT_MS = 10_000;

function usage(why) {
  console.log(`FAIL: ${why}`);
  console.log(
    "usage: node tls.mjs <url> <ca file> [--cert <client cert> --key <client key>] [--handshake-first]",
  );
  process.exit(2);
}

function parseArguments(argv) {
  const args = { positional: [], cert: null, key: null, handshakeFirst: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--cert" || arg === "--key") {
      if (i + 1 >= argv.length) usage(`${arg} needs a file`);
      args[arg.slice(2)] = argv[++i];
    } else if (arg === "--handshake-first") {
      args.handshakeFirst = true;
    } else if (arg.startsWith("--")) {
      usage(`unknown option ${arg}`);
    } else {
      args.positional.push(arg);
    }
  }
  if (args.positional.length !== 2) usage("a url and a CA file");
  if (Boolean(args.cert) !== Boolean(args.key)) usage("--cert and --key go together");
  [args.url, args.ca] = args.positional;
  return args;
}

// Message `index` of `size` bytes: its index in eight digits, then letters that shift with it
// (the same bytes as tls.py's payload()).
function payload(index, size) {
  const bytes = new Uint8Array(size);
  const head = String(index).padStart(8, "0");
  for (let j = 0; j < 8; j++) bytes[j] = head.charCodeAt(j);
  for (let j = 0; j < size - 8; j++) bytes[8 + j] = 97 + ((index + j) % 26);
  return bytes;
}

function equal(a, b) {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function open(args) {
  const tls = { caFile: args.ca };
  if (args.cert) {
    tls.certFile = args.cert;
    tls.keyFile = args.key;
  }
  if (args.handshakeFirst) tls.handshakeFirst = true;
  return connect({ servers: args.url, tls, reconnect: false, timeout: TIMEOUT_MS });
}

// Subscribes to `subject`, recording each message's data in order, and the first error the
// subscription is told of (a slow consumer, a closed connection).
function recorder(nc, subject) {
  const received = { messages: [], error: null, wake: null };
  nc.subscribe(subject, {
    callback: (err, msg) => {
      if (err) received.error ??= err;
      else received.messages.push(msg.data);
      received.wake?.();
    },
  });
  return received;
}

// Waits until `received` holds `count` messages (or an error), at most TIMEOUT_MS.
async function awaitCount(received, count, what) {
  const deadline = Date.now() + TIMEOUT_MS;
  while (received.messages.length < count && received.error === null) {
    const left = deadline - Date.now();
    if (left <= 0) {
      throw new Error(`${what}: ${received.messages.length} of ${count} messages arrived`);
    }
    // Woken by the next message or error, or at the deadline; the timer is cleared either way
    // (a pending one would keep node running after the checks).
    let timer;
    await new Promise((wake) => {
      received.wake = wake;
      timer = setTimeout(wake, left);
    });
    clearTimeout(timer);
    received.wake = null;
  }
  if (received.error !== null) throw new Error(`${what}: ${received.error}`);
}

async function exactCounts(subscriber, publisher, count, size) {
  const subject = `js.tls.bulk.${size}`;
  const received = recorder(subscriber, subject);
  await subscriber.flush();
  for (let i = 0; i < count; i++) publisher.publish(subject, payload(i, size));
  await publisher.flush();
  await awaitCount(received, count, subject);
  // Anything more would have been sent before the publisher's PONG; the subscriber's own
  // round trip and a short wait let it arrive.
  await subscriber.flush();
  await sleep(100);
  if (received.messages.length !== count) {
    throw new Error(`${subject}: ${received.messages.length} messages, expected ${count}`);
  }
  for (let i = 0; i < count; i++) {
    if (!equal(received.messages[i], payload(i, size))) {
      throw new Error(`${subject}: message ${i} differs`);
    }
  }
}

async function requests(subscriber, publisher, count) {
  const encoder = new TextEncoder();
  const decoder = new TextDecoder();
  subscriber.subscribe("js.tls.echo", {
    callback: (err, msg) => {
      if (!err) msg.respond(encoder.encode(`echo ${decoder.decode(msg.data)}`));
    },
  });
  await subscriber.flush();
  for (let i = 0; i < count; i++) {
    let reply;
    try {
      reply = await publisher.request("js.tls.echo", encoder.encode(`${i}`), {
        timeout: TIMEOUT_MS,
      });
    } catch (err) {
      throw new Error(`request ${i}: ${err.message}`);
    }
    const got = decoder.decode(reply.data);
    if (got !== `echo ${i}`) throw new Error(`request ${i} got ${JSON.stringify(got)}`);
  }
}

async function main(args) {
  const subscriber = await open(args);
  const publisher = await open(args);
  try {
    await exactCounts(subscriber, publisher, 2000, 1024);
    await exactCounts(subscriber, publisher, 20, 100 * 1024);
    await requests(subscriber, publisher, 100);
  } finally {
    await publisher.close();
    await subscriber.close();
  }
}

const args = parseArguments(process.argv.slice(2));
try {
  await main(args);
} catch (err) {
  console.log(`FAIL: ${err?.message ?? err}`);
  process.exit(1);
}
const mode = args.handshakeFirst ? "handshake first" : "TLS after INFO";
console.log(`ok nats.js over TLS (${mode})`);
