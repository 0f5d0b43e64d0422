import { connect, type Socket } from 'node:net';

/**
 * The load generator's HTTP/1.1 client: keep-alive connections, one request in flight on
 * each (no pipelining), requests written as one string and responses read by
 * Content-Length. It costs a fraction of node:http's client per call, so on a machine
 * whose cores the server and PostgreSQL share with it, the load generator takes less of
 * them, and its own garbage collection adds less to the latencies it measures (wrk and
 * similar tools are built the same way).
 */
export class RawHttpClient {
  readonly #host: string;
  readonly #port: number;
  readonly #idle: Connection[] = [];
  readonly #all = new Set<Connection>();

  constructor(url: string) {
    const u = new URL(url);
    this.#host = u.hostname;
    this.#port = Number(u.port || 80);
  }

  async request(method: string, path: string, headers: Record<string, string>, body = ''): Promise<{ status: number; body: string }> {
    let head = `${method} ${path} HTTP/1.1\r\nhost: ${this.#host}:${this.#port}\r\n`;
    for (const name in headers) head += `${name}: ${headers[name]}\r\n`;
    if (body) head += `content-length: ${Buffer.byteLength(body)}\r\n`;
    // A connection the server closed while it was idle (its keep-alive timeout) is dropped here.
    let connection = this.#idle.pop();
    while (connection && !connection.open) connection = this.#idle.pop();
    connection ??= await this.#open();
    const response = await connection.send(`${head}\r\n${body}`);
    if (connection.open) this.#idle.push(connection);
    return response;
  }

  async #open(): Promise<Connection> {
    const socket = connect({ host: this.#host, port: this.#port, noDelay: true });
    await new Promise<void>((done, fail) => {
      socket.once('connect', done);
      socket.once('error', fail);
    });
    const connection = new Connection(socket, () => this.#all.delete(connection));
    this.#all.add(connection);
    return connection;
  }

  close(): void {
    for (const c of this.#all) c.close();
  }
}

class Connection {
  open = true;
  readonly #socket: Socket;
  #buffer: Buffer = Buffer.alloc(0);
  #waiting: { done: (r: { status: number; body: string }) => void; fail: (e: Error) => void } | undefined;

  constructor(socket: Socket, onClose: () => void) {
    this.#socket = socket;
    socket.on('data', (chunk: Buffer) => {
      this.#buffer = this.#buffer.length === 0 ? chunk : Buffer.concat([this.#buffer, chunk]);
      this.#parse();
    });
    const closed = (error?: Error) => {
      this.open = false;
      onClose();
      this.#waiting?.fail(error ?? new Error('connection closed'));
      this.#waiting = undefined;
    };
    socket.on('error', closed);
    socket.on('close', () => closed());
  }

  send(request: string): Promise<{ status: number; body: string }> {
    if (!this.open) return Promise.reject(new Error('connection closed'));
    return new Promise((done, fail) => {
      this.#waiting = { done, fail };
      this.#socket.write(request);
    });
  }

  #parse(): void {
    const end = this.#buffer.indexOf('\r\n\r\n');
    if (end < 0) return;
    const head = this.#buffer.toString('latin1', 0, end);
    const length = /\r\ncontent-length: *(\d+)/i.exec(head);
    if (!length) {
      this.#waiting?.fail(new Error(`response without Content-Length: ${head.split('\r\n')[0]}`));
      this.close();
      return;
    }
    const total = end + 4 + Number(length[1]);
    if (this.#buffer.length < total) return;
    const status = Number(head.slice(9, 12));
    const body = this.#buffer.toString('utf8', end + 4, total);
    this.#buffer = this.#buffer.subarray(total);
    if (/\r\nconnection: *close/i.test(head)) this.close();
    const waiting = this.#waiting;
    this.#waiting = undefined;
    waiting?.done({ status, body });
  }

  close(): void {
    this.open = false;
    this.#socket.destroy();
  }
}
