// Client conformance suite: drives a NATS server with the official nats.js client (npm `nats`).
//
// Usage: node conformance.mjs [nats://127.0.0.1:4222]   (or NATS_URL in the environment)
//        node conformance.mjs --list                    (print the case names)
// CASES=a,b limits the run to those cases; VERBOSE=1 prints stack traces.
//
// Each case prints `ok <name>` or `FAIL <name>: <why>`; the run ends with
// `N passed, M failed` and exits 0 only if every case passed. Every case runs
// under its own timeout, so a misbehaving server cannot hang the suite.

import net from "node:net";
import { connect, headers as mkHeaders, ErrorCode, StringCodec } from "nats";

const ARGS = process.argv.slice(2).filter((a) => !a.startsWith("--"));
const URL = ARGS[0] || process.env.NATS_URL || "nats://127.0.0.1:4222";
const CASE_TIMEOUT = 6_000;
const MAX_PAYLOAD = 1048576;
const sc = StringCodec();
const enc = (s) => sc.encode(s);
const dec = (b) => sc.decode(b);

class CaseFailure extends Error {}
function check(cond, why) {
  if (!cond) throw new CaseFailure(why);
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(cond, ms) {
  const deadline = Date.now() + ms;
  while (!cond() && Date.now() < deadline) await sleep(5);
  return cond();
}

class Conns {
  constructor() {
    this.all = [];
  }
  async new(opts = {}) {
    const nc = await connect({
      servers: URL,
      reconnect: false,
      timeout: 3000,
      ...opts,
    });
    this.all.push(nc);
    return nc;
  }
  async close() {
    for (const nc of this.all) {
      if (!nc.isClosed()) {
        await Promise.race([nc.close().catch(() => {}), sleep(2000)]);
      }
    }
  }
}

// Subscribe with a callback that records messages into an array.
function recorder(nc, subject, opts = {}) {
  const msgs = [];
  const sub = nc.subscribe(subject, {
    ...opts,
    callback: (err, m) => {
      if (!err) msgs.push(m);
    },
  });
  return { sub, msgs };
}

// Raw TCP exchange: send `text` after INFO, collect what comes back until the
// server closes or `ms` passes. Returns {data (after INFO), closed}.
function rawExchange(text, ms = 3000) {
  const u = new globalThis.URL(URL.replace(/^nats:/, "http:"));
  return new Promise((resolve) => {
    let buf = "";
    let sent = false;
    let done = false;
    const sock = net.connect({ host: u.hostname, port: Number(u.port) });
    const finish = (closed) => {
      if (done) return;
      done = true;
      clearTimeout(t);
      sock.destroy();
      resolve({ data: buf.replace(/^INFO [^\n]*\n/, ""), closed });
    };
    const t = setTimeout(() => finish(false), ms);
    sock.on("data", (d) => {
      buf += d.toString("latin1");
      if (!sent && buf.includes("\r\n")) {
        sent = true;
        sock.write(text);
      }
    });
    sock.on("end", () => finish(true));
    sock.on("close", () => finish(true));
    sock.on("error", () => finish(true));
  });
}

// ---------------------------------------------------------------- cases

async function caseConnectInfo(c) {
  const nc = await c.new();
  const info = nc.info;
  check(info && typeof info === "object", "no server INFO seen by client");
  check(info.headers === true, `INFO headers = ${JSON.stringify(info.headers)}, want true`);
  check(info.max_payload === MAX_PAYLOAD, `INFO max_payload = ${info.max_payload}`);
  check(typeof info.server_id === "string" && info.server_id.length > 0, `INFO server_id = ${info.server_id}`);
  check(Number.isInteger(info.proto) && info.proto >= 1, `INFO proto = ${info.proto}`);
  check(nc.getServerVersion() !== undefined, `INFO version unparseable: ${info.version}`);
}

async function casePubsubLiteral(c) {
  const subNc = await c.new();
  const pubNc = await c.new();
  const { sub, msgs } = recorder(subNc, "conf.literal");
  await subNc.flush();
  for (let i = 0; i < 100; i++) pubNc.publish("conf.literal", enc(`msg-${i}`));
  await pubNc.flush();
  await waitFor(() => msgs.length >= 100, 3000);
  await sleep(100);
  check(msgs.length === 100, `received ${msgs.length} of 100`);
  msgs.forEach((m, i) => {
    check(m.subject === "conf.literal", `msg ${i} subject ${m.subject}`);
    check(dec(m.data) === `msg-${i}`, `msg ${i} payload ${dec(m.data)} (out of order or corrupt)`);
  });
  sub.unsubscribe();
}

async function caseWildcards(c) {
  const nc = await c.new();
  const star = recorder(nc, "a.*");
  const full = recorder(nc, "a.>");
  const mid = recorder(nc, "*.b.*");
  await nc.flush();
  for (const s of ["a.b", "a.b.c", "b.x", "a", "a.c.d.e"]) nc.publish(s, enc(s));
  await nc.flush();
  await waitFor(() => full.msgs.length >= 3 && star.msgs.length >= 1 && mid.msgs.length >= 1, 3000);
  await sleep(200);
  const subj = (r) => JSON.stringify(r.msgs.map((m) => m.subject));
  check(subj(star) === '["a.b"]', `'a.*' got ${subj(star)}, want ["a.b"]`);
  check(subj(full) === '["a.b","a.b.c","a.c.d.e"]', `'a.>' got ${subj(full)}, want [a.b, a.b.c, a.c.d.e]`);
  check(subj(mid) === '["a.b.c"]', `'*.b.*' got ${subj(mid)}, want ["a.b.c"]`);
}

async function caseQueueGroup(c) {
  const n = 3000;
  const counts = [0, 0, 0];
  const seen = new Map();
  for (let i = 0; i < 3; i++) {
    const nc = await c.new();
    nc.subscribe("conf.queue", {
      queue: "q",
      callback: (err, m) => {
        if (err) return;
        counts[i]++;
        const k = dec(m.data);
        seen.set(k, (seen.get(k) || 0) + 1);
      },
    });
    await nc.flush();
  }
  const pub = await c.new();
  for (let i = 0; i < n; i++) pub.publish("conf.queue", enc(String(i)));
  await pub.flush();
  await waitFor(() => counts[0] + counts[1] + counts[2] >= n, 5000);
  await sleep(200); // catch duplicates arriving late
  const total = counts[0] + counts[1] + counts[2];
  check(total === n, `group received ${total} messages, want ${n} (counts ${counts})`);
  const dups = [...seen.values()].filter((v) => v !== 1).length;
  check(dups === 0, `${dups} messages delivered more than once`);
  check(seen.size === n, `${n - seen.size} messages missing`);
  counts.forEach((k, i) => {
    const share = k / n;
    check(share >= 0.2 && share <= 0.47, `member ${i} got ${k} (${Math.round(share * 100)}%); counts ${counts}, want each in 20%..47%`);
  });
}

async function caseRequestReply(c) {
  const srv = await c.new();
  const cli = await c.new();
  const replies = [];
  srv.subscribe("svc.echo", {
    callback: (err, m) => {
      if (err) return;
      replies.push(m.reply);
      m.respond(enc(`echo:${dec(m.data)}`));
    },
  });
  await srv.flush();
  const results = await Promise.all(
    Array.from({ length: 50 }, (_, i) =>
      cli.request("svc.echo", enc(`req-${i}`), { timeout: 3000 }).then((r) => [i, dec(r.data)]),
    ),
  );
  for (const [i, data] of results) check(data === `echo:req-${i}`, `request ${i} got ${data}`);
  // nats.js multiplexes requests onto one wildcard inbox subscription (_INBOX.<id>.*):
  // every reply subject shares one prefix and has its own last token.
  check(replies.length === 50, `responder saw ${replies.length} requests`);
  const prefixes = new Set(replies.map((r) => r.slice(0, r.lastIndexOf("."))));
  check(prefixes.size === 1, `reply subjects do not share one muxed inbox: ${[...prefixes].slice(0, 3)}`);
  check(new Set(replies).size === 50, "reply subjects not unique per request");
}

async function caseHeaders(c) {
  const subNc = await c.new();
  const pubNc = await c.new();
  const { msgs } = recorder(subNc, "conf.hdr");
  await subNc.flush();
  const h = mkHeaders();
  h.set("X-Test", "1");
  h.append("X-Multi", "a");
  h.append("X-Multi", "b");
  pubNc.publish("conf.hdr", enc("hello headers"), { headers: h });
  await pubNc.flush();
  await waitFor(() => msgs.length >= 1, 3000);
  check(msgs.length === 1, "no message with headers received");
  const m = msgs[0];
  check(dec(m.data) === "hello headers", `payload ${dec(m.data)}`);
  check(m.headers, "headers missing on received message");
  check(m.headers.get("X-Test") === "1", `X-Test = ${m.headers.get("X-Test")}`);
  const multi = JSON.stringify(m.headers.values("X-Multi"));
  check(multi === '["a","b"]', `X-Multi values = ${multi}, want ["a","b"]`);
  check(!m.headers.hasError, `unexpected status ${m.headers.code} on message`);

  // Request with headers: the responder echoes a header back.
  pubNc.subscribe("svc.hdr", {
    callback: (err, req) => {
      if (err) return;
      const rh = mkHeaders();
      rh.set("X-Echo", req.headers ? req.headers.get("X-Req") : "");
      for (const v of req.headers ? req.headers.values("X-Multi") : []) rh.append("X-Multi", v);
      req.respond(enc(`got:${dec(req.data)}`), { headers: rh });
    },
  });
  await pubNc.flush();
  const qh = mkHeaders();
  qh.set("X-Req", "abc");
  qh.append("X-Multi", "1");
  qh.append("X-Multi", "2");
  const r = await subNc.request("svc.hdr", enc("ping"), { timeout: 3000, headers: qh });
  check(dec(r.data) === "got:ping", `request-with-headers reply payload ${dec(r.data)}`);
  check(r.headers && r.headers.get("X-Echo") === "abc", `reply X-Echo = ${r.headers && r.headers.get("X-Echo")}`);
  const rm = JSON.stringify(r.headers.values("X-Multi"));
  check(rm === '["1","2"]', `reply X-Multi = ${rm}`);
}

async function caseNoResponders(c) {
  const nc = await c.new();
  const t0 = Date.now();
  try {
    await nc.request("conf.nobody.home", enc("x"), { timeout: 4000 });
  } catch (err) {
    const el = Date.now() - t0;
    if (err.code === ErrorCode.NoResponders) {
      check(el < 1000, `no-responders error took ${el} ms`);
      return;
    }
    if (err.code === ErrorCode.Timeout) throw new CaseFailure(`request timed out after ${el} ms instead of no-responders`);
    throw new CaseFailure(`unexpected error ${err.code}: ${err.message}`);
  }
  throw new CaseFailure("request to a subject with no subscribers succeeded");
}

async function caseEchoOff(c) {
  const quiet = await c.new({ noEcho: true });
  const other = await c.new();
  const { msgs } = recorder(quiet, "conf.echo");
  await quiet.flush();
  for (let i = 0; i < 3; i++) quiet.publish("conf.echo", enc(`self-${i}`));
  await quiet.flush();
  other.publish("conf.echo", enc("from-other"));
  await other.flush();
  await waitFor(() => msgs.length >= 1, 3000);
  await sleep(300);
  const got = JSON.stringify(msgs.map((m) => dec(m.data)));
  check(got === '["from-other"]', `echo=false connection got ${got}, want ["from-other"]`);
  // Sanity: with echo on (default) a connection does see its own messages.
  const echoNc = await c.new();
  const own = recorder(echoNc, "conf.echo2");
  await echoNc.flush();
  echoNc.publish("conf.echo2", enc("mine"));
  await echoNc.flush();
  await waitFor(() => own.msgs.length >= 1, 2000);
  check(own.msgs.length === 1 && dec(own.msgs[0].data) === "mine", "echo=true connection did not get its own message");
}

async function caseAutoUnsubscribe(c) {
  const subNc = await c.new();
  const pubNc = await c.new();
  const { sub, msgs } = recorder(subNc, "conf.autounsub");
  sub.unsubscribe(5); // UNSUB <sid> 5
  await subNc.flush();
  for (let i = 0; i < 10; i++) pubNc.publish("conf.autounsub", enc(String(i)));
  await pubNc.flush();
  await waitFor(() => msgs.length >= 5, 3000);
  await sleep(300);
  await subNc.flush();
  const got = JSON.stringify(msgs.map((m) => dec(m.data)));
  check(got === '["0","1","2","3","4"]', `received ${got}, want the first 5`);
  // The client also enforces the limit; inMsgs shows what the server sent.
  const inMsgs = subNc.stats().inMsgs;
  check(inMsgs === 5, `server delivered ${inMsgs} messages, want 5`);
  check(sub.isClosed(), "subscription not closed after reaching its max");
}

async function caseLargePayload(c) {
  const nc = await c.new();
  const { msgs } = recorder(nc, "conf.big");
  await nc.flush();
  const payload = new Uint8Array(MAX_PAYLOAD);
  for (let i = 0; i < MAX_PAYLOAD; i++) payload[i] = (i * 7 + 3) & 0xff;
  nc.publish("conf.big", payload);
  await nc.flush();
  await waitFor(() => msgs.length >= 1, 5000);
  check(msgs.length === 1, "1 MiB message not received");
  const d = msgs[0].data;
  check(d.length === MAX_PAYLOAD, `received ${d.length} bytes`);
  check(Buffer.from(d).equals(Buffer.from(payload)), "1 MiB payload corrupted");

  // max_payload + 1: the client refuses it before it reaches the wire.
  const over = new Uint8Array(MAX_PAYLOAD + 1);
  over.set(payload);
  let clientRejected = false;
  try {
    nc.publish("conf.big", over);
  } catch (err) {
    check(err.code === ErrorCode.MaxPayloadExceeded, `unexpected error ${err.code}`);
    clientRejected = true;
  }
  check(clientRejected, "client accepted a max_payload+1 message");
  await nc.flush();
  check(!nc.isClosed(), "connection not usable after client-side rejection");

  // What the server does with it, on a raw socket (the client would not send it):
  // a PUB control line announcing max_payload+1 bytes.
  const resp = await rawExchange(
    'CONNECT {"verbose":false,"pedantic":false,"protocol":1}\r\n' + `PUB conf.big ${MAX_PAYLOAD + 1}\r\n`,
  );
  check(/-ERR 'Maximum Payload Violation'/i.test(resp.data), `server answered ${JSON.stringify(resp.data.slice(0, 200))}, want -ERR 'Maximum Payload Violation'`);
  check(resp.closed, "server did not close the connection after the max payload violation");
  console.log(`  # max_payload+1: rejected client-side (${ErrorCode.MaxPayloadExceeded}); a raw PUB of that size got ${JSON.stringify(resp.data.trim().split("\r\n").pop())} and a close`);
  await sleep(200);
  check(msgs.length === 1, "oversized message was delivered");
}

async function caseFlushPing(c) {
  const nc = await c.new();
  const t0 = Date.now();
  for (let i = 0; i < 5; i++) await nc.flush();
  const el = Date.now() - t0;
  check(el < 2000, `5 flushes took ${el} ms`);
  const rtt = await nc.rtt();
  check(rtt >= 0 && rtt < 1000, `rtt ${rtt} ms`);
}

async function caseDrain(c) {
  const nc = await c.new();
  const pub = await c.new();
  const got = [];
  const sub = nc.subscribe("conf.drain", {
    callback: (err, m) => {
      if (!err) got.push(dec(m.data));
    },
  });
  await nc.flush();
  for (let i = 0; i < 100; i++) pub.publish("conf.drain", enc(String(i)));
  await pub.flush();
  await sub.drain();
  await waitFor(() => got.length >= 100, 3000);
  check(JSON.stringify(got) === JSON.stringify(Array.from({ length: 100 }, (_, i) => String(i))), `drained sub handled ${got.length} of 100`);
  check(sub.isClosed(), "subscription not closed after drain");
  pub.publish("conf.drain", enc("late"));
  await pub.flush();
  await sleep(100);
  check(got.length === 100, "message delivered after subscription drain");

  // Whole-connection drain.
  const nc2 = await c.new();
  const got2 = [];
  nc2.subscribe("conf.drain2", {
    callback: (err, m) => {
      if (!err) got2.push(m);
    },
  });
  await nc2.flush();
  for (let i = 0; i < 50; i++) pub.publish("conf.drain2", enc(String(i)));
  await pub.flush();
  await nc2.flush();
  const closed = nc2.closed();
  await nc2.drain();
  const err = await Promise.race([closed, sleep(3000).then(() => "timeout")]);
  check(err !== "timeout", "connection did not close after drain");
  check(err === undefined, `drain ended with error ${err}`);
  check(nc2.isClosed(), "connection not closed after drain");
  check(got2.length === 50, `connection drain handled ${got2.length} of 50`);
}

const CASES = [
  ["connect_info", caseConnectInfo],
  ["pubsub_literal", casePubsubLiteral],
  ["wildcards", caseWildcards],
  ["queue_group", caseQueueGroup],
  ["request_reply", caseRequestReply],
  ["headers", caseHeaders],
  ["no_responders", caseNoResponders],
  ["echo_off", caseEchoOff],
  ["auto_unsubscribe", caseAutoUnsubscribe],
  ["large_payload", caseLargePayload],
  ["flush_ping", caseFlushPing],
  ["drain", caseDrain],
];

async function main() {
  if (process.argv.includes("--list")) {
    for (const [name] of CASES) console.log(name);
    return true;
  }
  const only = new Set((process.env.CASES || "").split(",").filter(Boolean));
  let passed = 0;
  let failed = 0;
  for (const [name, fn] of CASES) {
    if (only.size && !only.has(name)) continue;
    const c = new Conns();
    let timer;
    try {
      await Promise.race([
        fn(c),
        new Promise((_, rej) => {
          timer = setTimeout(() => rej(new CaseFailure(`timed out after ${CASE_TIMEOUT / 1000}s`)), CASE_TIMEOUT);
        }),
      ]);
      console.log(`ok ${name}`);
      passed++;
    } catch (err) {
      const why = err instanceof CaseFailure ? err.message : `${err.code ? err.code + ": " : ""}${err.message || err}`;
      if (process.env.VERBOSE && !(err instanceof CaseFailure)) console.error(err);
      console.log(`FAIL ${name}: ${why}`);
      failed++;
    } finally {
      clearTimeout(timer);
      await c.close();
    }
  }
  console.log(`${passed} passed, ${failed} failed`);
  return failed === 0;
}

main().then(
  (ok) => process.exit(ok ? 0 : 1),
  (err) => {
    console.log(`FAIL suite: ${err && err.message}`);
    console.log("0 passed, 1 failed");
    process.exit(1);
  },
);
