/**
 * Contract steps of the social part of the storage port (profiles, user search, follows).
 * `store_contract.ts` runs them with its other steps against every adapter.
 *
 * Steps share one database with every other step, so each names its accounts with the step's
 * random prefix `p` and searches only for prefixes that start with it.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { Store, UserRecord } from "./store.ts";
import type { StoreUnderTest } from "./store_contract.ts";

type Step = (subject: StoreUnderTest, p: string) => Promise<void>;

async function account(
  store: Store,
  p: string,
  name: string,
  extra: Partial<UserRecord> = {},
): Promise<string> {
  const userId = `${p}id_${name}`;
  await store.createUser({
    userId,
    username: `${p}${name}`,
    passwordHash: "h",
    createdAt: 1_700_000_000_000,
    disabled: false,
    ...extra,
  });
  return userId;
}

/** The social steps. */
export const SOCIAL_STEPS: [string, Step][] = [
  [
    "updateProfile sets only the named fields and getProfiles returns them for existing accounts",
    async ({ store }, p) => {
      const a = await account(store, p, "ann");
      const b = await account(store, p, "ben");
      const empty = { displayName: "", avatar: "", bio: "" };
      assert.deepEqual(await store.getProfiles([a]), [{
        userId: a,
        username: `${p}ann`,
        ...empty,
      }]);

      const set = await store.updateProfile(a, { displayName: "Ann Ö", bio: "hi" }, 1);
      assert.deepEqual(set, {
        userId: a,
        username: `${p}ann`,
        displayName: "Ann Ö",
        avatar: "",
        bio: "hi",
      });
      const next = await store.updateProfile(a, { avatar: "https://x.test/a.png", bio: "" }, 2);
      assert.deepEqual(next, { ...set, avatar: "https://x.test/a.png", bio: "" });
      assert.equal(await store.updateProfile(`${p}nobody`, { bio: "x" }, 3), null);

      const both = await store.getProfiles([b, `${p}nobody`, a]);
      assert.deepEqual(
        both.sort((x, y) => x.userId.localeCompare(y.userId)),
        [next, { userId: b, username: `${p}ben`, ...empty }],
      );
      assert.deepEqual(await store.getProfiles([]), []);
    },
  ],
  [
    "searchUsers matches username and display-name prefixes case-insensitively, once per account",
    async ({ store }, p) => {
      const P = p.toUpperCase();
      const anna = await account(store, p, "anna");
      const bob = await account(store, p, "bob");
      const carl = await account(store, p, "carl");
      const anders = await account(store, p, "anders", { disabled: true });
      const zed = await account(store, `zz${p}`, "zed");
      await store.updateProfile(bob, { displayName: `${P}ANNA B` }, 1);
      await store.updateProfile(carl, { displayName: `${p}carl` }, 1);
      await store.updateProfile(anders, { displayName: `${p}anders` }, 1);
      await store.updateProfile(zed, { displayName: `${P}Åsa` }, 1);

      const ids = (page: { users: { userId: string }[] }) => page.users.map((u) => u.userId);
      const an = await store.searchUsers(`${P}AN`, null, 10);
      assert.deepEqual(ids(an), [anna, bob], "username match, then display-name match");
      assert.equal(an.next, null);
      assert.equal(an.users[1].displayName, `${P}ANNA B`);

      // Paging through every match of the prefix: ordered by the matching key, each account
      // once (bob and carl by their usernames), disabled accounts left out.
      const first = await store.searchUsers(p, null, 2);
      assert.deepEqual(ids(first), [anna, bob]);
      assert.deepEqual(first.next, { key: `${p}bob`, userId: bob });
      const second = await store.searchUsers(p, first.next, 2);
      assert.deepEqual(ids(second), [carl, zed]);
      assert.equal(second.next, null);
      assert.deepEqual(ids(await store.searchUsers(`${p}å`, null, 5)), [zed]);
      assert.deepEqual(ids(await store.searchUsers(`${p}nomatch`, null, 5)), []);
      assert.deepEqual(ids(await store.searchUsers("", null, 5)), []);
    },
  ],
  [
    "follow and unfollow keep edges that listFollows pages newest first and followCounts counts",
    async ({ store }, p) => {
      const star = await account(store, p, "star");
      const fans = [];
      for (const name of ["f1", "f2", "f3", "f4"]) fans.push(await account(store, p, name));
      assert.equal(await store.follow(fans[0], star, 100), true);
      assert.equal(await store.follow(fans[0], star, 999), false, "an existing edge stays");
      assert.equal(await store.follow(fans[1], star, 200), true);
      assert.equal(await store.follow(fans[2], star, 200), true);
      assert.equal(await store.follow(fans[3], star, 300), true);
      assert.equal(await store.follow(star, fans[0], 400), true);

      assert.deepEqual(await store.followCounts(star), { followers: 4, following: 1 });
      assert.deepEqual(await store.followCounts(fans[0]), { followers: 1, following: 1 });
      const all = await store.listFollows(star, "followers", null, 10);
      assert.deepEqual(all, [
        { userId: fans[3], ts: 300 },
        { userId: fans[2], ts: 200 },
        { userId: fans[1], ts: 200 },
        { userId: fans[0], ts: 100 },
      ]);
      const page1 = await store.listFollows(star, "followers", null, 2);
      assert.deepEqual(page1, all.slice(0, 2));
      assert.deepEqual(await store.listFollows(star, "followers", page1[1], 2), all.slice(2));
      assert.deepEqual(await store.listFollows(star, "following", null, 10), [
        { userId: fans[0], ts: 400 },
      ]);

      assert.equal(await store.unfollow(fans[1], star), true);
      assert.equal(await store.unfollow(fans[1], star), false);
      assert.deepEqual(await store.followCounts(star), { followers: 3, following: 1 });
      assert.deepEqual(
        (await store.listFollows(star, "followers", null, 10)).map((e) => e.userId),
        [fans[3], fans[2], fans[0]],
      );
      assert.deepEqual(await store.followCounts(`${p}nobody`), { followers: 0, following: 0 });
    },
  ],
];
