// Queues: the list with a declare form, and a page per queue.
import { fill, page } from './core.js';

export async function queuesPage(main) { fill(main, page('Queues')); }
export async function queuePage(main) { fill(main, page('Queue')); }
