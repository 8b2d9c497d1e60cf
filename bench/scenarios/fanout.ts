/**
 * Scenario 2 — group fan-out: groups of 10, 100, 1,000 (and 10,000) members, every member
 * connected; one sender per group. Deliveries/s at saturation (closed loop), then the delivery
 * p99 open-loop at half of it.
 *
 * On our server groups are made with `group.create` (at most 1,023 ids fit one frame's array
 * limit) and grown with `group.invite` in chunks; the baselines join rooms at connect time.
 *
 * @module
 */
import {
  type Account,
  accounts,
  closeClients,
  connectClients,
  type Deployment,
  type LoadResult,
  log,
  prime,
  request,
  runLoad,
  saturate,
  type Sizes,
} from "../harness.ts";
import type { GeneratorPool } from "../generator_pool.ts";

/** One group size on one system. */
export interface FanoutRow {
  label: string;
  size: number;
  groups: number;
  saturation?: LoadResult;
  half?: LoadResult;
  /** Why the size was not measured. */
  skipped?: string;
}

/** Groups of `size` drawn from a pool of `pool` users: how many (each from consecutive users). */
export function groupCount(size: number, pool: number): number {
  return Math.max(1, Math.floor(Math.min(pool, Math.max(size, 1000)) / size));
}

const CREATE_CHUNK = 1000;

/**
 * Creates a group on our server owned by `members[0]` (client key `ownerKey`) with every one of
 * `members`: `group.create` takes at most 1,023 ids, the rest join by `group.invite` in chunks.
 * Returns the group id.
 */
export async function createGroup(
  pool: GeneratorPool,
  ownerKey: number,
  members: Account[],
  name: string,
): Promise<string> {
  const first = members.slice(1, CREATE_CHUNK).map((a) => a.userId);
  const ok = await request(pool, ownerKey, { op: "group.create", name, members: first });
  if (ok.op !== "ok") throw new Error(`group.create: ${ok.code} ${ok.message}`);
  const groupId = String(ok.groupId);
  for (let i = CREATE_CHUNK; i < members.length; i += CREATE_CHUNK) {
    const users = members.slice(i, i + CREATE_CHUNK).map((a) => a.userId);
    const r = await request(pool, ownerKey, { op: "group.invite", group: groupId, users });
    if (r.op !== "ok") throw new Error(`group.invite: ${r.code} ${r.message}`);
  }
  return groupId;
}

/** Runs scenario 2 on `dep` for every size in `sizes.groupSizes`. */
export async function fanoutScenario(
  dep: Deployment,
  pool: GeneratorPool,
  sizes: Sizes,
  tag: string,
  onlySizes?: number[],
): Promise<FanoutRow[]> {
  const groupSizes = onlySizes ?? sizes.groupSizes;
  const n = Math.max(...groupSizes.map((g) => Math.min(g, sizes.fanoutPool)), 1000);
  const users = await accounts(dep, pool, Math.min(n, sizes.fanoutPool), `f${tag}_`);
  const rooms = (i: number) =>
    groupSizes.filter((g) => Math.floor(i / g) < groupCount(g, users.length)).map((g) =>
      `g${g}-${Math.floor(i / g)}`
    );
  await connectClients(
    dep,
    pool,
    users.map((account, key) => ({ key, account, server: 0, rooms: rooms(key) })),
  );
  const rows: FanoutRow[] = [];
  for (const size of groupSizes) {
    const groups = groupCount(size, users.length);
    // Each phase starts once the one before has drained (every send answered, no delivery for
    // 100 ms), or after drainMs: a phase with the last one's backlog still in flight would count
    // its deliveries and time its own sends behind it. 10,000-member sends can leave seconds of
    // deliveries queued, so the bound grows with the group (1 ms per member).
    const phase = {
      durationMs: sizes.durationMs,
      warmupMs: sizes.warmupMs,
      drainMs: Math.max(sizes.drainMs, sizes.quick ? 0 : size),
    };
    if (size > users.length) {
      rows.push({
        label: dep.label,
        size,
        groups,
        skipped: `only ${users.length} users in this run`,
      });
      continue;
    }
    const senders = [];
    let skipped = "";
    for (let g = 0; g < groups; g++) {
      const ownerKey = g * size;
      let group = `g${size}-${g}`;
      if (dep.kind === "im") {
        try {
          group = await createGroup(
            pool,
            ownerKey,
            users.slice(ownerKey, ownerKey + size),
            `bench ${size}`,
          );
        } catch (err) {
          skipped = (err as Error).message;
          break;
        }
      }
      senders.push({ key: ownerKey, to: { group } });
    }
    if (skipped) {
      rows.push({ label: dep.label, size, groups, skipped });
      log(`${dep.label} fan-out ${size}: skipped (${skipped})`);
      continue;
    }
    // Few outstanding sends per group to start with: each one already means `size` deliveries.
    const window = Math.max(2, Math.min(16, Math.round(16_000 / size)));
    await prime(dep, pool, senders, sizes.quick);
    const saturation = sizes.quick
      ? await runLoad(dep, pool, { mode: "closed", window, senders, ...phase })
      : await saturate(dep, pool, { mode: "closed", window, senders, ...phase });
    const half = await runLoad(dep, pool, {
      mode: "open",
      rate: Math.max(1, saturation.okPerSec / 2),
      senders,
      ...phase,
    });
    log(
      `${dep.label} fan-out ${size}×${groups}: ${
        saturation.deliveriesPerSec.toFixed(0)
      } deliveries/s (window ${saturation.window}); ` +
        `at half: p99 ${half.deliveryLatency.p99} ms`,
    );
    rows.push({ label: dep.label, size, groups, saturation, half });
  }
  await closeClients(pool);
  return rows;
}
