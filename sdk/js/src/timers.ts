/**
 * Every deadline of a peer in one table: named timers, each either unset or
 * due at one time (same clock as the inputs' `now`). Pure: nothing fires by
 * itself; the owner asks which are due.
 */
export class TimerTable<K extends string> {
  private readonly at = new Map<K, number>();

  /** Arms `name` to be due at `time`, replacing its previous deadline. */
  set(name: K, time: number): void {
    this.at.set(name, time);
  }

  /** Disarms `name`. */
  clear(name: K): void {
    this.at.delete(name);
  }

  /** Disarms every timer. */
  clearAll(): void {
    this.at.clear();
  }

  /** When `name` is due, or null when it is not armed. */
  get(name: K): number | null {
    return this.at.get(name) ?? null;
  }

  /** The earliest deadline of all, or null when none is armed. */
  next(): number | null {
    let best: number | null = null;
    for (const t of this.at.values()) if (best === null || t < best) best = t;
    return best;
  }

  /** Whether `name` is armed and due at `now`. */
  due(name: K, now: number): boolean {
    const t = this.at.get(name);
    return t !== undefined && t <= now;
  }
}
