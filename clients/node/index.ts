// The repository's own import path for the Node client (its tests, benchmarks and the `herald` CLI); the package
// @herald-notify/client is built from src/.
export * from './src/index.js';
