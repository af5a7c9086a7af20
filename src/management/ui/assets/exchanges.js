// Exchanges: the list with a declare form, and a page per exchange.
import { fill, page } from './core.js';

export async function exchangesPage(main) { fill(main, page('Exchanges')); }
export async function exchangePage(main) { fill(main, page('Exchange')); }
