/**
 * The size of libuv's thread pool, set before anything queues work on it. argon2id password
 * hashes run there, each holding its 19 MiB memory cost while it runs: libuv's default of four
 * threads lets four hashes hold memory at once, while a two-core machine runs only two at a time.
 * An operator's UV_THREADPOOL_SIZE wins.
 */
const DEFAULT_THREADPOOL_SIZE = 2;

process.env.UV_THREADPOOL_SIZE ??= String(DEFAULT_THREADPOOL_SIZE);
