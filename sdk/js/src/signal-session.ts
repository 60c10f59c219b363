/**
 * The signal socket's state in one place. Pure bookkeeping: the core
 * decides what to send and when to reconnect.
 */
import type { SocketId } from "./core-io.js";

type Phase = "opening" | "open" | "registered";

/**
 * At most one current signal socket and how far it got (opening, open,
 * registered), whether the peer was ever registered, and the run of
 * sockets in a row that never opened. Events of a socket it replaced are
 * told apart by id.
 */
export class SignalSession {
  private current: { id: SocketId; phase: Phase } | null = null;
  private nextId = 1;
  private failuresInRow = 0;
  private wasRegistered = false;

  /** A new socket, replacing the current one (whose later events no longer count); its id. */
  begin(): SocketId {
    const id = this.nextId++;
    this.current = { id, phase: "opening" };
    return id;
  }

  /** The current socket, or null while there is none. */
  get socket(): SocketId | null {
    return this.current?.id ?? null;
  }

  /** Whether `id` names the current socket. */
  isCurrent(id: SocketId): boolean {
    return this.current?.id === id;
  }

  /** The current socket has opened. */
  get open(): boolean {
    return this.current !== null && this.current.phase !== "opening";
  }

  /** An AssignParent came on the current socket. */
  get registered(): boolean {
    return this.current?.phase === "registered";
  }

  /** An AssignParent came on some socket, ever. */
  get everRegistered(): boolean {
    return this.wasRegistered;
  }

  /** The current socket `id` opened: the run of failures ends. False when `id` is not current. */
  opened(id: SocketId): boolean {
    if (!this.isCurrent(id)) return false;
    this.current!.phase = "open";
    this.failuresInRow = 0;
    return true;
  }

  /** An AssignParent on the current socket; true when it is the first on it (a new server session). */
  assigned(): boolean {
    if (this.current === null) return false;
    const first = this.current.phase !== "registered";
    this.current.phase = "registered";
    this.wasRegistered = true;
    return first;
  }

  /**
   * Forgets the current socket (or `id`, when it is the current one):
   * whether it had opened, or null when there was nothing to forget.
   */
  end(id?: SocketId): { id: SocketId; hadOpened: boolean } | null {
    const c = this.current;
    if (c === null || (id !== undefined && c.id !== id)) return null;
    this.current = null;
    return { id: c.id, hadOpened: c.phase !== "opening" };
  }

  /** Counts a socket that never opened; true when it makes exactly `limit` in a row. */
  notOpened(limit: number): boolean {
    this.failuresInRow++;
    return this.failuresInRow === limit;
  }

  /** Whether a message of `type` may go out now: only Register before registration, and only on an open socket. */
  mayCarry(type: string): boolean {
    return this.open && (this.registered || type === "Register");
  }
}
