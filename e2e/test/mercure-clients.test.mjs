// Mercure (issue 19, item 8) with clients that are not browsers and not ours: npm `eventsource`
// 5.1.5 and PyPI `httpx-sse` 0.4.3 read the streams, npm `jose` and PyPI `pyjwt` 2.15.1 mint the
// tokens, a 0.x client speaks the compatibility mode, pusher-js (Node build) and the `pusher` Node
// SDK cross to the Pusher endpoint. One setup: a redis-server and two pushwire nodes on it, each
// `--mercure-issuer ISS=hs256:SECRET --mercure-audience URL --mercure-anonymous --mercure-compat
// hs256:KEY --pusher-app 1001:app-key:app-secret?namespace=mercure` (one audience for the cluster,
// as behind a load balancer). Every wait is bounded; the last step kills node A.
//
//   history     eventsource: `last_event_id=earliest`, `last_event_id=<id>`, the `Last-Event-ID`
//               header winning over the query, none, an unknown id: the events replayed and the
//               `Mercure-Last-Event-ID` answered each time, then live
//   python      pyjwt mints an at+jwt token; httpx publishes (a type, a retry, non-ASCII data) and
//               httpx-sse reads `earliest` and `Last-Event-ID` with `Mercure-Last-Event-ID`; the
//               Node eventsource subscribed before sees the same updates live
//   anonymous   no token: public updates only
//   0.x         a `mercure`-claim token (no typ/aud/iss) signed with the compatibility key: `topic=`
//               URI templates, the token in `authorization=` and in the `mercureAuthorization`
//               cookie, private updates by template grant, `lastEventID`, a publish refused 403
//   pusher      a Mercure update (with a type) reaches pusher-js on channel `news` (app namespace
//               `mercure`) as that event; a Node SDK trigger reaches the Mercure subscriber
//   two nodes   an eventsource subscribed on A gets an update published on B; A is killed; its
//               reconnect (routed to B, held until two more updates were published on B) sends
//               Last-Event-ID and gets exactly those two, then live ones
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import PusherClient from 'pusher-js';
import {
  COMPAT_SECRET, ISSUER, SECRET, brief, issuerFlag, mintCompatToken, mintToken, openEventSource, postForm, publishUpdate,
} from '../lib/mercure.mjs';
import { APP, nodeSdk } from '../lib/pusher.mjs';
import { runPython } from '../lib/python.mjs';
import { startRedis } from '../lib/redis.mjs';
import { startPushwire } from '../lib/topics.mjs';
import { stopGroup, waitFor, withTimeout } from '../lib/server.mjs';

const PY_CLIENT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'lib', 'mercure_httpx_sse.py');
const AUDIENCE = 'https://hub.e2e.test/.well-known/mercure';
const STEP_TIMEOUT_MS = 10000;
const q = (pairs) => new URLSearchParams(pairs).toString();
const ev = (id, data, type = 'message') => [id, type, data];

test('Mercure with independent clients: eventsource, httpx-sse + pyjwt, jose, 0.x compat, pusher-js, two nodes on Redis', { timeout: 90000 }, async (t) => {
  const stops = [];
  const streams = [];
  const open = (...args) => { const s = openEventSource(...args); streams.push(s); return s; };
  let pusher = null;
  const nodes = [];
  try {
    const redis = await startRedis();
    stops.push(redis.stop);
    const args = [
      '--broker', redis.url, ...issuerFlag(), '--mercure-audience', AUDIENCE, '--mercure-anonymous',
      '--mercure-compat', `hs256:${COMPAT_SECRET}`, '--pusher-app', `${APP.id}:${APP.key}:${APP.secret}?namespace=mercure`,
    ];
    for (let i = 0; i < 2; i += 1) {
      const node = await startPushwire({ args });
      nodes.push(node);
      stops.push(() => node.stop());
    }
    const [a, b] = nodes;
    const hubA = `${a.url}.well-known/mercure`;
    const hubB = `${b.url}.well-known/mercure`;
    t.diagnostic(`redis ${redis.port}; A ${a.command}; B on ${b.port}`);
    const token = await mintToken({ audience: AUDIENCE, publish: ['*'], subscribe: ['*'] });
    const pub = (hub, fields) => publishUpdate(hub, fields, token);

    // history, with npm eventsource.
    const es = (pairs) => `${hubA}?${q([['match', 'urn:e2e:es'], ...pairs])}`;
    await pub(hubA, [['topic', 'urn:e2e:es'], ['data', 'first'], ['id', 'es-1']]);
    await pub(hubA, [['topic', 'urn:e2e:es'], ['data', '{"n":2}'], ['id', 'es-2']]);
    await pub(hubA, [['topic', 'urn:e2e:es'], ['data', 'third'], ['type', 'es.typed'], ['id', 'es-3']]);
    const types = ['es.typed'];
    const earliest = open(es([['last_event_id', 'earliest']]), { token, types });
    const afterOne = open(es([['last_event_id', 'es-1']]), { token, types });
    const headerWins = open(es([['last_event_id', 'es-1']]), { token, types, headers: { 'Last-Event-ID': 'es-2' } });
    assert.deepEqual(brief(await earliest.untilId('es-3')), [ev('es-1', 'first'), ev('es-2', '{"n":2}'), ev('es-3', 'third', 'es.typed')], 'earliest: all kept');
    assert.deepEqual(brief(await afterOne.untilId('es-3')), [ev('es-2', '{"n":2}'), ev('es-3', 'third', 'es.typed')], 'last_event_id=es-1');
    assert.deepEqual(brief(await headerWins.untilId('es-3')), [ev('es-3', 'third', 'es.typed')], 'the Last-Event-ID header wins over the query');
    assert.deepEqual([earliest, afterOne, headerWins].map((s) => s.connections[0].mercureLastEventId), ['earliest', 'es-1', 'es-2'], 'Mercure-Last-Event-ID');
    assert.match(earliest.connections[0].contentType, /^text\/event-stream/);
    const fresh = open(es([]), { token, types });
    const unknown = open(es([['last_event_id', 'no-such-id']]), { token, types });
    await fresh.until((s) => s.opens === 1, 'open');
    await unknown.until((s) => s.opens === 1, 'open');
    assert.equal(fresh.connections[0].mercureLastEventId, 'es-3', 'no last_event_id: Mercure-Last-Event-ID is the newest id');
    assert.equal(unknown.connections[0].mercureLastEventId, 'es-3', 'an unknown id: nothing replayed, Mercure-Last-Event-ID is the newest id');
    await pub(hubA, [['topic', 'urn:e2e:es'], ['data', 'live'], ['id', 'es-4']]);
    for (const s of [earliest, afterOne, headerWins, fresh, unknown]) {
      await s.untilId('es-4');
      assert.deepEqual(brief(s.events.slice(-1)), [ev('es-4', 'live')]);
    }
    assert.deepEqual(brief(fresh.events), [ev('es-4', 'live')], 'no last_event_id: live only');
    assert.deepEqual(brief(unknown.events), [ev('es-4', 'live')], 'an unknown id: live only');
    t.diagnostic('eventsource: earliest, last_event_id, Last-Event-ID header, none, unknown id; Mercure-Last-Event-ID each time');

    // python: pyjwt + httpx + httpx-sse; the Node eventsource sees its publishes live.
    const pyLive = open(`${hubA}?${q([['match', 'urn:e2e:py']])}`, { token, types: ['py.typed'] });
    await pyLive.until((s) => s.opens === 1, 'open');
    const job = {
      issuer: ISSUER, secret: SECRET, audience: AUDIENCE, hub: hubA,
      publish: [
        [['topic', 'urn:e2e:py'], ['data', 'grüße, 世界'], ['id', 'py-1']],
        [['topic', 'urn:e2e:py'], ['data', 'typed'], ['type', 'py.typed'], ['retry', '1500'], ['id', 'py-2']],
      ],
      streams: [
        { query: [['match', 'urn:e2e:py'], ['last_event_id', 'earliest']], until_id: 'py-2' },
        { query: [['match', 'urn:e2e:py']], headers: { 'Last-Event-ID': 'py-1' }, until_id: 'py-2' },
      ],
    };
    const py = JSON.parse(await runPython(PY_CLIENT, [JSON.stringify(job)]));
    assert.deepEqual([py.pyjwt, py.httpx_sse], ['2.15.1', '0.4.3'], 'the PyPI versions');
    assert.deepEqual(py.token_header, { alg: 'HS256', typ: 'at+jwt' }, 'pyjwt minted an at+jwt header');
    assert.deepEqual(py.published, ['py-1', 'py-2']);
    const [pyEarliest, pyHeader] = py.streams;
    assert.equal(pyEarliest.status, 200, JSON.stringify(pyEarliest));
    assert.equal(pyEarliest.mercure_last_event_id, 'earliest');
    assert.deepEqual(pyEarliest.events, [
      { id: 'py-1', event: 'message', data: 'grüße, 世界', retry: null },
      { id: 'py-2', event: 'py.typed', data: 'typed', retry: 1500 },
    ], 'httpx-sse: earliest');
    assert.equal(pyHeader.mercure_last_event_id, 'py-1', 'httpx-sse: Last-Event-ID header');
    assert.deepEqual(pyHeader.events.map((e) => e.id), ['py-2']);
    assert.deepEqual(brief(await pyLive.untilId('py-2')), [ev('py-1', 'grüße, 世界'), ev('py-2', 'typed', 'py.typed')], 'eventsource got the Python publishes live');
    t.diagnostic(`httpx-sse ${py.httpx_sse} + pyjwt ${py.pyjwt}: published 2, earliest and Last-Event-ID replayed`);

    // anonymous: public updates only.
    const anon = open(`${hubA}?${q([['match', 'urn:e2e:anon']])}`);
    await anon.until((s) => s.opens === 1, 'open without a token');
    await pub(hubA, [['topic', 'urn:e2e:anon'], ['data', 'private'], ['private', 'on'], ['id', 'an-1']]);
    await pub(hubA, [['topic', 'urn:e2e:anon'], ['data', 'public'], ['id', 'an-2']]);
    assert.deepEqual(brief(await anon.untilId('an-2')), [ev('an-2', 'public')], 'anonymous: the public update, not the private one');
    t.diagnostic('anonymous subscriber: public only');

    // 0.x compatibility mode.
    const template = 'https://example.com/books/{id}';
    const compat = await mintCompatToken({ publish: [template], subscribe: [template] });
    const byQuery = open(`${hubA}?${q([['topic', template], ['authorization', compat]])}`);
    const byCookie = open(`${hubA}?${q([['topic', template]])}`, { headers: { cookie: `mercureAuthorization=${compat}` } });
    await byQuery.until((s) => s.opens === 1, 'open (authorization= query)');
    await byCookie.until((s) => s.opens === 1, 'open (mercureAuthorization cookie)');
    const compatPub = (fields) => publishUpdate(hubA, fields, compat);
    await compatPub([['topic', 'https://example.com/books/7'], ['data', 'seven'], ['id', 'c-1']]);
    await compatPub([['topic', 'https://example.com/books/8'], ['data', 'eight'], ['private', 'on'], ['id', 'c-2']]);
    await pub(hubA, [['topic', 'https://example.com/books/9/reviews'], ['data', 'not matched'], ['id', 'c-3']]); // {id} takes no '/'
    await compatPub([['topic', 'https://example.com/books/last'], ['data', 'last'], ['id', 'c-4']]);
    const compatWant = [ev('c-1', 'seven'), ev('c-2', 'eight'), ev('c-4', 'last')];
    assert.deepEqual(brief(await byQuery.untilId('c-4')), compatWant, '0.x: topic= template, authorization= query, private by the template grant');
    assert.deepEqual(brief(await byCookie.untilId('c-4')), compatWant, '0.x: mercureAuthorization cookie');
    const refused = await postForm(hubA, [['topic', 'https://example.com/authors/1'], ['data', 'x']], { token: compat });
    assert.equal(refused.status, 403, `0.x: a publish outside the token's templates: ${refused.status} ${refused.text}`);
    const resumed = open(`${hubA}?${q([['topic', template], ['lastEventID', 'c-1'], ['authorization', compat]])}`);
    assert.deepEqual(brief(await resumed.untilId('c-4')), [ev('c-2', 'eight'), ev('c-4', 'last')], '0.x: lastEventID');
    assert.equal(resumed.connections[0].mercureLastEventId, 'c-1');
    t.diagnostic('0.x: topic= URI template, authorization= and mercureAuthorization, lastEventID, 403 outside the grant');

    // pusher: Mercure -> pusher-js, Pusher SDK -> Mercure.
    const got = [];
    let subscribed = false;
    pusher = new PusherClient(APP.key, { wsHost: '127.0.0.1', wsPort: a.port, forceTLS: false, enabledTransports: ['ws'], cluster: 'mt1' });
    const channel = pusher.subscribe('news');
    channel.bind('pusher:subscription_succeeded', () => { subscribed = true; });
    channel.bind_global((event, data) => { if (!event.startsWith('pusher')) got.push({ event, data }); });
    const news = open(`${hubA}?${q([['match', 'news']])}`, { token, types: ['headline', 'from-pusher'] });
    await waitFor(() => subscribed, { timeout: STEP_TIMEOUT_MS, what: 'pusher-js subscribed to news' });
    await news.until((s) => s.opens === 1, 'open');
    await pub(hubA, [['topic', 'news'], ['type', 'headline'], ['data', '{"title":"from mercure"}'], ['id', 'p-1']]);
    await waitFor(() => got.length, { timeout: STEP_TIMEOUT_MS, what: 'pusher-js: the Mercure update', describe: () => JSON.stringify(got) });
    assert.deepEqual(got, [{ event: 'headline', data: { title: 'from mercure' } }], 'pusher-js: the update\'s type as the event, its data');
    await withTimeout(nodeSdk(a.port).trigger('news', 'from-pusher', { b: 2 }), STEP_TIMEOUT_MS, 'Node SDK trigger');
    await news.until((s) => s.events.length >= 2, 'the Pusher event on the Mercure stream');
    assert.deepEqual(brief(news.events.slice(0, 1)), [ev('p-1', '{"title":"from mercure"}', 'headline')]);
    const [fromPusher] = news.events.slice(1);
    assert.deepEqual([fromPusher.type, fromPusher.data], ['from-pusher', '{"b":2}'], 'Mercure: the Pusher event\'s name as the type, its data');
    assert.match(fromPusher.id, /^urn:pushwire:[^:]+:\d+$/, 'Mercure: a hub-made id for the Pusher event');
    t.diagnostic(`pusher: Mercure -> pusher-js, Node SDK -> Mercure (${fromPusher.id})`);
    pusher.disconnect();
    pusher = null;
    for (const s of streams) s.close();

    // two nodes: resume on B after A died.
    let node = a;
    let release;
    const gate = new Promise((resolve) => { release = resolve; });
    const two = open(`${hubA}?${q([['match', 'urn:e2e:two']])}`, {
      token, route: (u) => u.replace(`:${a.port}/`, `:${node.port}/`), gate: () => gate,
    });
    await two.until((s) => s.opens === 1, 'open on A');
    await pub(hubB, [['topic', 'urn:e2e:two'], ['data', 'from B'], ['retry', '200'], ['id', 'tw-1']]);
    await two.untilId('tw-1', 'the update published on B, on A');
    await stopGroup(a.child, { signal: 'SIGKILL', graceMs: 2000 });
    node = b;
    await two.until((s) => s.errors.length >= 1, 'the stream to end with A');
    await pub(hubB, [['topic', 'urn:e2e:two'], ['data', 'missed 1'], ['id', 'tw-2']]);
    await pub(hubB, [['topic', 'urn:e2e:two'], ['data', 'missed 2'], ['id', 'tw-3']]);
    release();
    await two.untilId('tw-3', 'the missed updates, from B');
    await pub(hubB, [['topic', 'urn:e2e:two'], ['data', 'live on B'], ['id', 'tw-4']]);
    await two.untilId('tw-4');
    assert.deepEqual(brief(two.events), [ev('tw-1', 'from B'), ev('tw-2', 'missed 1'), ev('tw-3', 'missed 2'), ev('tw-4', 'live on B')], 'each once, in order');
    const reconnect = two.connections.at(-1);
    assert.equal(two.opens, 2, `one reconnect: ${two.describe()}`);
    assert.deepEqual({ url: reconnect.url.startsWith(hubB), lastEventId: reconnect.lastEventId, status: reconnect.status, mercureLastEventId: reconnect.mercureLastEventId },
      { url: true, lastEventId: 'tw-1', status: 200, mercureLastEventId: 'tw-1' }, 'the reconnect went to B with Last-Event-ID tw-1');
    t.diagnostic('two nodes: resumed on B from Last-Event-ID tw-1 after A was killed');
  } catch (err) {
    for (const s of streams) err.message += `\n${s.url}: ${s.describe()}`;
    for (const n of nodes) err.message += `\nnode ${n.port}:\n${n.output()}`;
    throw err;
  } finally {
    pusher?.disconnect();
    for (const s of streams) s.close();
    for (const stop of stops.reverse()) await stop().catch(() => {});
  }
});
