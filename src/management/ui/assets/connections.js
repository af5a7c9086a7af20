// Connections and channels: lists with rates and client properties, a page for each, and
// closing a connection.
import { fill, page } from './core.js';

export async function connectionsPage(main) { fill(main, page('Connections')); }
export async function connectionPage(main) { fill(main, page('Connection')); }
export async function channelsPage(main) { fill(main, page('Channels')); }
export async function channelPage(main) { fill(main, page('Channel')); }
