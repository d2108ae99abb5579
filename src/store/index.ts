// The store's public face: the Database adapters and the repositories.
export * from './api-keys.js';
export * from './console.js';
export * from './data-dir-lock.js';
export * from './database.js';
export * from './deliveries.js';
export * from './delivery-config.js';
export * from './errors.js';
export * from './feedback.js';
export * from './group-commit.js';
export * from './inbox.js';
export * from './notifications.js';
export * from './outbox.js';
export * from './preferences.js';
export * from './push-tokens.js';
export * from './send.js';
export * from './suppressions.js';
