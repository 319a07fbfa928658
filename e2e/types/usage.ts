// Compiled (never run) by scripts/gen-client --check: web/pushwire.d.ts, as an application
// written in TypeScript uses it, both as a module and as the global of the classic script.
import pushwireModule, { connect, PushwireError, version, type Client, type Message, type Subscription } from '../../web/pushwire';

const client: Client = connect('https://example.com', {
  transports: ['ws', 'sse'],
  token: async () => 'token',
  subscriptionToken: (topic) => (topic.startsWith('private:') ? 'sub-token' : null),
  probeMinDelay: 1000,
});
const sub: Subscription = client.subscribe<{ title: string }>('news', (message: Message<{ title: string }>) => {
  const title: string = message.data.title;
  const offset: number = message.offset;
  void [title, offset];
}, { since: { epoch: 'E', offset: 3 }, info: { name: 'alice' } });
void sub.ready.then((answer) => answer.recovered === true);
const position = sub.position;
if (position !== null) void position.epoch.length;
client.on('state', (event) => void (event.state === 'open' && event.transport));
client.on('lost', (event) => void (event.since === null || event.since.offset));
client.on('error', (err) => void (err instanceof PushwireError && err.code));
void client.publish('news', { title: 'hello' }).then((published) => published.offset + 1);
void client.presence('chat:lobby').then((members) => members.map((m) => m.client));
const one: 1 = version;
const same: typeof connect = pushwireModule.connect;
// The classic script's global.
const viaGlobal: Client = globalThis.pushwire.connect();
void [one, same, viaGlobal, new PushwireError('x', 400, 'news').topic];

// @ts-expect-error an unknown event
client.on('nope', () => {});
// @ts-expect-error data must be JSON
void client.publish('news', undefined);
// @ts-expect-error a subscription's topic is read-only
sub.topic = 'other';
