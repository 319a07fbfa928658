// Permissions for as long as a subscription lives: pushwire.js against `pushwire serve
// --token-secret … --token-leeway 0s` with short-lived tokens of both kinds.
//
//   lifetimes   a page connects over WebSocket (or SSE, or long-poll) with a connection-token function and a
//               subscription-token function, both fetching 4-second tokens from a small token
//               service in this process (as an application's backend would), and subscribes to a
//               topic the connection token does not grant (so only the subscription token holds it).
//               Messages are published steadily (one every 150 ms) while both tokens are renewed
//               at least three times each (more than three lifetimes of each kind).
//               The page asks for tokens through a function exposed by puppeteer (page.exposeFunction). The page must
//               receive every message once, in order (over WebSocket on one connection), with no error and no
//               'unsubscribed'; and the subscription is still live at the end (one more message
//               arrives). Over SSE the client renews a subscription token by reopening the stream
//               from its positions, and a stream whose connection token expires ends and comes back;
//               every long-poll carries fresh tokens.
//
// Tokens are HS256 JWTs signed here with Node's crypto (the server checks them with the same secret).

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { run, publish } from './topics.mjs';
import { sleep, waitFor, withTimeout } from './server.mjs';

const SECRET = 'e2e-permissions-secret-0123456789abcdef';
const TOPIC = 'room:e2e';
const TTL_S = 4;
const PUBLISH_EVERY_MS = 150;
const LIFETIMES = 3;

const b64url = (value) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');

/** An HS256 JWT of `claims`. */
export function signToken(claims, secret = SECRET) {
  const head = `${b64url({ alg: 'HS256', typ: 'JWT' })}.${b64url(claims)}`;
  const signature = crypto.createHmac('sha256', secret).update(head).digest('base64url');
  return `${head}.${signature}`;
}

/**
 * A token service, as an application's backend: `issue('connection')` is a connection token for
 * `user`, `issue('subscription', T)` a subscription token for T, each valid `ttl` seconds from now.
 * Counts what it issued.
 */
function tokenService({ user, ttl, grants }) {
  const issued = { connection: 0, subscription: 0 };
  return {
    issue(kind, topic) {
      const exp = Math.floor(Date.now() / 1000) + ttl;
      if (kind === 'connection') {
        issued.connection += 1;
        return signToken({ sub: user, exp, topics: grants });
      }
      if (kind === 'subscription' && typeof topic === 'string') {
        issued.subscription += 1;
        return signToken({ sub: user, exp, topic });
      }
      throw new Error(`no such token: ${kind}`);
    },
    issued: () => ({ ...issued }),
  };
}

/** Runs in the page: the client, with both token functions fetching from the token service. */
function lifetimesClient({ topic, transport }) {
  const t = window.lifetimes = { got: [], errors: [], unsubscribed: [], lost: [], auths: [], states: [], subscribed: null };
  const client = window.pushwire.connect(location.origin, {
    transports: [transport],
    token: () => window.issueToken('connection'),
    subscriptionToken: (name) => window.issueToken('subscription', name),
  });
  t.client = client;
  client.on('error', (e) => t.errors.push(`${e.code} ${e.message}`));
  client.on('unsubscribed', (u) => t.unsubscribed.push(u));
  client.on('lost', (l) => t.lost.push(l));
  client.on('auth', (a) => t.auths.push(a.expires));
  client.on('state', (s) => t.states.push(`${s.state}/${s.transport}`));
  t.sub = client.subscribe(topic, (m) => t.got.push(m.offset));
  t.sub.ready.then((r) => { t.subscribed = r; }, (e) => t.errors.push(`ready: ${e.code} ${e.message}`));
}

function readLifetimes() {
  const t = window.lifetimes;
  return {
    got: t.got.length, first: t.got.slice(0, 3), last: t.got.slice(-3), errors: t.errors, unsubscribed: t.unsubscribed,
    lost: t.lost, auths: t.auths.length, states: t.states, subscribed: t.subscribed, active: t.sub.active, state: t.client.state,
  };
}

export function runTokenLifetimesScenario({ engine, transport = 'websocket' }) {
  return run(`${engine}-permissions-lifetimes-${transport}`, engine, async ({ server, browser, step, pages }) => {
    // The connection token grants nothing on the topic: only the subscription token holds it.
    const tokens = tokenService({ user: 'alice', ttl: TTL_S, grants: { lobby: ['sub'] } });
    const page = await browser.newPage();
    let last = null;
    // (run() prints a page's last state with the chat page's fields.)
    pages.push({ page, label: 'alice', last: () => last && { ...last, log: [], messages: [] } });
    await withTimeout(page.exposeFunction('issueToken', (kind, topic) => tokens.issue(kind, topic)), 10000, 'expose issueToken');
    await withTimeout(page.goto(server.url, { waitUntil: 'load', timeout: 15000 }), 20000, 'open /');
    await withTimeout(page.addScriptTag({ url: '/pushwire.js' }), 10000, 'load /pushwire.js');
    await withTimeout(page.evaluate(lifetimesClient, { topic: TOPIC, transport }), 10000, 'start the client');
    const read = async () => { last = await withTimeout(page.evaluate(readLifetimes), 15000, 'read'); return last; };
    const until = (check, what, timeout) =>
      waitFor(async () => check(await read()), { timeout, interval: 100, what, describe: () => JSON.stringify({ page: last, issued: tokens.issued() }) });

    await until((s) => s.subscribed !== null, 'subscribed with a subscription token', 15000);
    assert.equal(typeof last.subscribed.expires, 'number', `the sub reply says when its token expires: ${JSON.stringify(last.subscribed)}`);
    step(`subscribed: ${JSON.stringify(last.subscribed)}; issued ${JSON.stringify(tokens.issued())}`);

    // Publish steadily until both kinds of token have been renewed LIFETIMES times.
    const started = Date.now();
    let published = 0;
    let publishing = true;
    const publisher = (async () => {
      while (publishing) {
        const answer = await publish(server.port, { n: published + 1 }, TOPIC);
        published += 1;
        assert.equal(answer.offset, published, 'the API gives offsets 1, 2, 3, …');
        await sleep(PUBLISH_EVERY_MS);
      }
    })();
    try {
      const renewed = () => {
        const issued = tokens.issued();
        return issued.connection >= LIFETIMES + 1 && issued.subscription >= LIFETIMES + 1;
      };
      // Each renewal comes at 80% of a token's life (about 3.2 s of 4 s); allow plenty on a loaded machine.
      await waitFor(async () => {
        const s = await read();
        if (s.errors.length || s.unsubscribed.length) throw new Error(`the page reported trouble: ${JSON.stringify(s)}`);
        // Each poll fetches fresh tokens: count the time too.
        return renewed() && Date.now() - started >= LIFETIMES * TTL_S * 1000;
      }, { timeout: (LIFETIMES + 2) * TTL_S * 1000 * 3, interval: 250, what: `${LIFETIMES} renewals of each token`, describe: () => JSON.stringify({ page: last, issued: tokens.issued() }) });
      // And past the last renewed-from token's expiry, so that three whole lifetimes have passed.
      await sleep(TTL_S * 1000);
    } finally {
      publishing = false;
      await publisher;
    }
    step(`published ${published} messages; issued ${JSON.stringify(tokens.issued())}`);
    await until((s) => s.got >= published, `all ${published} messages arrive`, 15000);

    // Still live: one more message arrives.
    const extra = await publish(server.port, { n: 'last' }, TOPIC);
    await until((s) => s.got >= extra.offset, 'a message after the last renewal arrives', 15000);
    const got = await withTimeout(page.evaluate(() => window.lifetimes.got), 15000, 'read offsets');
    const expected = Array.from({ length: extra.offset }, (_, i) => i + 1);
    assert.deepEqual(got, expected, 'every message once, in order');
    const s = await read();
    assert.deepEqual(s.errors, [], 'no error');
    assert.deepEqual(s.unsubscribed, [], 'the server never ended the subscription');
    assert.deepEqual(s.lost, [], 'nothing reported lost');
    assert.equal(s.active, true, 'the subscription is still active');
    assert.equal(s.state, 'open');
    if (transport === 'websocket') {
      assert.deepEqual(s.states.filter((x) => x.startsWith('open/')), ['open/websocket'], `one connection throughout: ${JSON.stringify(s.states)}`);
      assert.ok(s.auths >= LIFETIMES + 1, `auth, then ${LIFETIMES} refreshes at least: ${s.auths}`);
    }
    step(`done: ${got.length} messages in order; ${JSON.stringify(tokens.issued())} tokens; ${s.auths} auths`);
    await withTimeout(page.evaluate(() => window.lifetimes.client.close()), 5000, 'close the client');
  }, { serverArgs: ['--token-secret', SECRET, '--token-leeway', '0s'] });
}
