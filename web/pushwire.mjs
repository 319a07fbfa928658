// pushwire.js as an ES module: `import { connect } from '/pushwire.mjs'`.
// pushwire.js is a classic script (so that <script src="/pushwire.js"> works); importing it
// runs it once as a module, and it leaves its API on globalThis.pushwire.
import './pushwire.js';

const api = globalThis.pushwire;
export const { connect, PushwireError, version } = api;
export default api;
