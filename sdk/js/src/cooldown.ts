/**
 * Peers refused for a while (children dropped as slow): bounded, kept in
 * expiry order, so expired entries are found from the front.
 */
export class Cooldown {
  private readonly until = new Map<string, number>();

  /** `max`: most peers remembered; past it the one whose cooldown ends first is forgotten. */
  constructor(private readonly max: number) {}

  /** Refuses `id` until `until` (replacing an earlier cooldown of it). */
  add(id: string, until: number): void {
    this.until.delete(id); // re-inserted last: the Map stays in expiry order
    this.until.set(id, until);
    if (this.until.size > this.max) this.until.delete(this.until.keys().next().value!);
  }

  /** Whether `id` is still refused at `now` (an expired entry is forgotten). */
  blocks(id: string, now: number): boolean {
    const until = this.until.get(id);
    if (until === undefined) return false;
    if (now < until) return true;
    this.until.delete(id);
    return false;
  }

  /** Forgets every cooldown over at `now`. */
  prune(now: number): void {
    for (const [id, until] of this.until) {
      if (until > now) break;
      this.until.delete(id);
    }
  }
}
