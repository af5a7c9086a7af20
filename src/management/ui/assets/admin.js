// Administration: users, vhosts, permissions, policies, limits and definitions.
import { fill, page } from './core.js';

export async function adminPage(main) { fill(main, page('Admin')); }
