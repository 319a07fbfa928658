// The Pusher HTTP API through the Node server SDK (`pusher` 5.3.4), seen by pusher-js 8.6.0's
// Node build (no browser): a trigger to ten channels, a batch, channel info with
// subscription_count and user_count, the users of a presence channel, and
// terminateUserConnections. One pushwire node with the Pusher app of lib/pusher.mjs.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import PusherClient from 'pusher-js';
import { APP, nodeSdk, sdkJson, startPusherNodes } from '../lib/pusher.mjs';
import { waitFor, withTimeout } from '../lib/server.mjs';

const STEP_TIMEOUT_MS = 10000;

/** A pusher-js client as `user`; auth is signed in-process by the Node SDK (customHandler). */
function client(port, user, api) {
  const c = {
    user, events: [], members: [], states: [], errors: [], subscribed: new Set(),
    pusher: new PusherClient(APP.key, {
      wsHost: '127.0.0.1', wsPort: port, forceTLS: false, enabledTransports: ['ws'], cluster: 'mt1',
      channelAuthorization: {
        customHandler: ({ socketId, channelName }, callback) => callback(null, channelName.startsWith('presence-')
          ? api.authorizeChannel(socketId, channelName, { user_id: user, user_info: { name: user } })
          : api.authorizeChannel(socketId, channelName)),
      },
      userAuthentication: {
        customHandler: ({ socketId }, callback) => callback(null, api.authenticateUser(socketId, { id: user })),
      },
    }),
  };
  c.pusher.connection.bind('state_change', (s) => c.states.push(s.current));
  c.pusher.connection.bind('error', (e) => c.errors.push(e?.error?.data ?? e?.type ?? String(e)));
  c.subscribe = (name) => {
    const ch = c.pusher.subscribe(name);
    ch.bind('pusher:subscription_succeeded', () => c.subscribed.add(name));
    ch.bind('pusher:subscription_error', (e) => c.errors.push({ name, e }));
    ch.bind('pusher:member_removed', (m) => c.members.push(`-${m.id}`));
    ch.bind_global((event, data) => { if (!event.startsWith('pusher')) c.events.push({ channel: name, event, data }); });
  };
  c.until = (check, what) => waitFor(check, {
    timeout: STEP_TIMEOUT_MS, interval: 20, what: `${user}: ${what}`,
    describe: () => JSON.stringify({ states: c.states, errors: c.errors, subscribed: [...c.subscribed], events: c.events, members: c.members }),
  });
  return c;
}

test('pusher Node SDK: trigger to many channels, batch, channel info, users, terminateUserConnections, seen by pusher-js in Node', { timeout: 60000 }, async () => {
  const cluster = await startPusherNodes({ count: 1 });
  const [node] = cluster.nodes;
  const api = nodeSdk(node.port);
  const clients = [];
  try {
    const dave = client(node.port, 'dave', api);
    const erin = client(node.port, 'erin', api);
    clients.push(dave, erin);
    const many = Array.from({ length: 10 }, (_, i) => `many-${i}`);
    for (const name of [...many, 'presence-x']) dave.subscribe(name);
    erin.subscribe('presence-x');
    erin.pusher.signin();
    await dave.until(() => dave.subscribed.size === 11, 'subscribed to 11 channels');
    await erin.until(() => erin.subscribed.has('presence-x') && erin.pusher.user.user_data?.id === 'erin', 'subscribed and signed in');

    // trigger to ten channels at once, then a batch.
    await withTimeout(api.trigger(many, 'fan', { n: 10 }), STEP_TIMEOUT_MS, 'trigger to 10 channels');
    await dave.until(() => many.every((ch) => dave.events.some((e) => e.channel === ch && e.event === 'fan')), 'fan on all 10 channels');
    assert.equal(dave.events.filter((e) => e.event === 'fan').length, 10, 'fan: once per channel');
    assert.ok(dave.events.every((e) => JSON.stringify(e.data) === '{"n":10}'), `fan data: ${JSON.stringify(dave.events)}`);
    await withTimeout(api.triggerBatch([
      { channel: 'many-0', name: 'b', data: { i: 0 } },
      { channel: 'many-1', name: 'b', data: { i: 1 } },
      { channel: 'presence-x', name: 'b', data: { i: 2 } },
    ]), STEP_TIMEOUT_MS, 'triggerBatch');
    await dave.until(() => dave.events.filter((e) => e.event === 'b').length === 3, 'the three batch events');
    await erin.until(() => erin.events.some((e) => e.event === 'b'), 'the batch event on presence-x');
    assert.deepEqual(dave.events.filter((e) => e.event === 'b').map((e) => [e.channel, e.data.i]).sort(),
      [['many-0', 0], ['many-1', 1], ['presence-x', 2]]);

    // channel info and users.
    const info = await sdkJson(api.get({ path: '/channels/presence-x', params: { info: 'subscription_count,user_count' } }), 'GET /channels/presence-x');
    assert.deepEqual(info, { occupied: true, subscription_count: 2, user_count: 2 }, 'presence-x info');
    const single = await sdkJson(api.get({ path: '/channels/many-3', params: { info: 'subscription_count' } }), 'GET /channels/many-3');
    assert.deepEqual(single, { occupied: true, subscription_count: 1 }, 'many-3 info');
    const empty = await sdkJson(api.get({ path: '/channels/nobody-here' }), 'GET /channels/nobody-here');
    assert.deepEqual(empty, { occupied: false }, 'an empty channel');
    const users = await sdkJson(api.get({ path: '/channels/presence-x/users' }), 'GET /channels/presence-x/users');
    assert.deepEqual(users.users?.map((u) => u.id).sort(), ['dave', 'erin'], `users: ${JSON.stringify(users)}`);

    // terminateUserConnections: erin's connection goes, dave sees her leave and stays.
    // pusher-js's Node build answers a server's close with 4000-4099 by closing its (already
    // closed) faye socket again, which arms a 30 s close timer nothing clears: that would keep
    // this process alive for 30 s after the test. A close of a closed socket is made a no-op.
    const socket = erin.pusher.connection.connection?.transport?.socket;
    assert.ok(socket && typeof socket.close === 'function', 'erin\'s faye WebSocket');
    const close = socket.close.bind(socket);
    socket.close = (...args) => (socket.readyState === 3 ? undefined : close(...args));
    await withTimeout(api.terminateUserConnections('erin'), STEP_TIMEOUT_MS, 'terminateUserConnections erin');
    await dave.until(() => dave.members.includes('-erin'), 'member_removed erin');
    await erin.until(() => erin.states.includes('disconnected') || erin.states.includes('unavailable') || erin.states.includes('failed'),
      'erin\'s connection closed by the server');
    const after = await sdkJson(api.get({ path: '/channels/presence-x/users' }), 'users after the termination');
    assert.deepEqual(after.users?.map((u) => u.id), ['dave'], `users after: ${JSON.stringify(after)}`);
    assert.equal(dave.pusher.connection.state, 'connected', 'dave is still connected');
    assert.notEqual(erin.pusher.connection.state, 'connected', `erin did not come back: ${JSON.stringify(erin.states)}`);
  } catch (err) {
    err.message += `\nnode output:\n${node.output()}`;
    throw err;
    // Closed from this side: the server sees the channels go. (Stopping the server in the middle
    // of pusher-js's close handshake would keep this process alive for its 30 s close timeout.)
    for (const c of clients.splice(0)) c.pusher.disconnect();
    await waitFor(async () => {
      const left = await sdkJson(api.get({ path: '/channels' }), 'GET /channels after the disconnects');
      return Object.keys(left.channels ?? {}).length === 0;
    }, { timeout: STEP_TIMEOUT_MS, interval: 50, what: 'no channel left occupied after the clients disconnected' });
  } finally {
    for (const c of clients) c.pusher.disconnect();
    await cluster.stop();
  }
});
