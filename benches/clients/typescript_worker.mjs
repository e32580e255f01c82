// One worker process of the TypeScript client (its built dist/) for benches/throughput.rs
// (figure 5): REDIS_URL, JOBQUEUE_STREAM, JOBQUEUE_GROUP and JOBQUEUE_CONSUMER come from the
// environment, as the operator sets them in worker pods. The handler does no work and returns
// a small result; SIGTERM makes run() finish the job in hand and resolve, and node exit 0.
import { Worker } from '../../clients/typescript/dist/index.js';

const worker = await Worker.fromEnv({ handler: () => ({ ok: true }) });
await worker.run();
