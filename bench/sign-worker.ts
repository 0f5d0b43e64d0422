// Signs Hub88 request bodies for bench/wallet.ts off the main thread (RSA signing is the
// load generator's own cost, not the server's; it is done before the timed run).
import { createPrivateKey, sign } from 'node:crypto';
import { parentPort, workerData } from 'node:worker_threads';

const { pem, bodies } = workerData as { pem: string; bodies: string[] };
const key = createPrivateKey(pem);
parentPort!.postMessage(bodies.map((b) => sign('sha256', Buffer.from(b), key).toString('base64')));
