export { Queue } from './queue.js';
export type { QueueOptions, ManifestOptions, EnqueueOptions, WaitOptions } from './queue.js';
export { Worker, heartbeatPeriod } from './worker.js';
export type { WorkerJob, JobContext, Handler, Logger, WorkerOptions, WorkerTarget } from './worker.js';
export type { Job, JobState, CancelOutcome } from './job.js';
export { isFinal } from './job.js';
export {
  JobQueueError,
  ConfigError,
  ConnectError,
  LibraryError,
  WaitTimeoutError,
  JobNotFoundError,
  PermanentFailure,
} from './errors.js';
export { QueueKeys, hashTag, defaultStream } from './keys.js';
export { readManifest } from './manifest.js';
export type { QueueManifest } from './manifest.js';
export { parseRedisUrl, LIBRARY_REVISION, CONNECT_TIMEOUT_MS } from './connection.js';
export type { Endpoint, TlsOptions } from './connection.js';
export { uuidv7 } from './uuid.js';
