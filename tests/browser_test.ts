/**
 * The web client and the admin console in headless Chromium (playwright-core driving
 * /usr/bin/chromium; `.ci/run` installs it): two people in two browser contexts sign up, find
 * each other, become friends, chat, see each other's read receipts, react to, edit and recall
 * messages and see the others' changes live; an admin, in a third
 * context, forces one of them out from the console, and that browser shows it.
 *
 * A second test covers scroll-back through history, creating a group, sending an image, and
 * administering the group from its members panel (roles, removing and adding a member, muting,
 * dissolving). A third covers the group's settings (name, announcement, join policy, mute-all),
 * approving and rejecting join requests, and joining an open group by its id from the sidebar.
 *
 * `SCREENSHOTS=1 deno task test` also writes docs/web-client.png and docs/admin-console.png.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { type Browser, chromium, type Page } from "playwright-core";
import { grantRole } from "../gateway/admin_grant.ts";
import { testNode } from "./support/node.ts";
import { type F, signUp, TestClient } from "./support/client.ts";

const CHROMIUM = "/usr/bin/chromium";
const ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-quic",
  "--no-first-run",
  "--disable-component-update",
  "--disable-sync",
];
const PASSWORD = "correct horse battery";
const SCREENSHOTS = Deno.env.get("SCREENSHOTS") === "1";

function uniq(name: string): string {
  return `${name}${crypto.randomUUID().replaceAll("-", "").slice(0, 6)}`;
}

/** A page in a browser context of its own, with the tests' default timeout. */
async function newPage(browser: Browser): Promise<Page> {
  const page = await (await browser.newContext()).newPage();
  page.setDefaultTimeout(20_000);
  return page;
}

/** A new account (named `prefix` + a random suffix) and a protocol client signed in as it. */
async function signedUpClient(base: string, prefix: string) {
  const name = uniq(prefix);
  const account = await signUp(base, name, PASSWORD);
  return { name, account, client: await TestClient.connect(base, account.accessToken) };
}

async function signUpIn(page: Page, base: string, username: string): Promise<void> {
  await page.goto(base + "/");
  await page.getByLabel("Username").fill(username);
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByRole("button", { name: "Sign up" }).click();
  await page.getByRole("status").filter({ hasText: "Online" }).waitFor();
}

Deno.test({
  name:
    "two people chat in the browser with read receipts, and an admin forces one out from the console",
  // playwright-core keeps the browser's pipes and its own timers in ways Deno's sanitizers
  // count as leaks even after browser.close(); everything is closed in `finally`.
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    try {
      await Deno.stat(CHROMIUM);
    } catch {
      throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)`);
    }
    const node = await testNode();
    let browser: Browser | undefined;
    try {
      browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS });
      const [alice, bob, root] = [uniq("alice"), uniq("bob"), uniq("root")];
      const a = await newPage(browser);
      const b = await newPage(browser);
      await signUpIn(a, node.url, alice);
      await signUpIn(b, node.url, bob);

      // Alice finds Bob and asks him to be her friend; Bob accepts.
      await a.getByLabel("Find people").fill(bob.slice(0, 5));
      await a.getByRole("button", { name: "Search" }).click();
      await a.getByRole("button", { name: `Add ${bob} as a friend` }).click();
      await b.getByRole("button", { name: `Accept ${alice}` }).click();
      const friendOnA = a.getByRole("button", { name: bob, exact: true });
      await friendOnA.waitFor();

      // Alice writes; Bob sees a conversation named after her with one unread message.
      await friendOnA.click();
      await a.getByLabel("Message").fill("Hi Bob!");
      await a.getByRole("button", { name: "Send" }).click();
      const convOnB = b.getByRole("navigation", { name: "Conversations" }).getByRole("button", {
        name: new RegExp(alice),
      });
      await convOnB.getByLabel("1 unread").waitFor();
      await convOnB.click();
      await b.getByRole("log").getByText("Hi Bob!").waitFor();

      // Bob has read it: Alice's message shows "Read".
      const aliceMsg = a.getByRole("log").locator(".msg.mine", { hasText: "Hi Bob!" });
      await aliceMsg.getByText("Read").waitFor();

      // Bob answers; Alice has the chat open, reads it at once, and Bob sees "Read".
      await b.getByLabel("Message").fill("Hello Alice");
      await b.getByRole("button", { name: "Send" }).click();
      await a.getByRole("log").getByText("Hello Alice").waitFor();
      await b.getByRole("log").locator(".msg.mine", { hasText: "Hello Alice" }).getByText("Read")
        .waitFor();
      assert.equal(await convOnB.getByLabel(/unread/).count(), 0);
      if (SCREENSHOTS) await b.screenshot({ path: "docs/web-client.png" });

      // Bob reacts to Alice's message; Alice sees the reaction live.
      const hiOnB = b.getByRole("log").locator(".msg", { hasText: "Hi Bob!" });
      await hiOnB.hover();
      await hiOnB.getByRole("button", { name: "React 👍" }).click();
      await aliceMsg.getByRole("button", { name: `👍 1: ${bob}` }).waitFor();
      await hiOnB.getByRole("button", { name: "Remove 👍" }).waitFor();
      // Another from the toolbar's "More reactions".
      await hiOnB.hover();
      await hiOnB.getByText("+", { exact: true }).click();
      await hiOnB.getByRole("button", { name: "React ❤️" }).click();
      await aliceMsg.getByRole("button", { name: `❤️ 1: ${bob}` }).waitFor();

      // Alice edits it; Bob sees the new text marked as edited.
      await aliceMsg.hover();
      await aliceMsg.getByRole("button", { name: "Edit" }).click();
      await a.getByLabel("Edit message").fill("Hi Bob, how are you?");
      // A message arriving meanwhile redraws the chat: the editor and its draft stay.
      await b.getByLabel("Message").fill("Still there?");
      await b.getByRole("button", { name: "Send" }).click();
      await a.getByRole("log").getByText("Still there?").waitFor();
      assert.equal(await a.getByLabel("Edit message").inputValue(), "Hi Bob, how are you?");
      await a.getByLabel("Edit message").press("Enter");
      const editedOnB = b.getByRole("log").locator(".msg", { hasText: "Hi Bob, how are you?" });
      await editedOnB.getByText("edited").waitFor();
      assert.equal(await b.getByRole("log").getByText("Hi Bob!").count(), 0);
      // An edited message can be edited again (the body sent carries only editable fields).
      const edited = a.getByRole("log").locator(".msg.mine", { hasText: "how are you?" });
      await edited.hover();
      await edited.getByRole("button", { name: "Edit" }).click();
      await a.getByLabel("Edit message").fill("Hi Bob, how is it going?");
      await a.getByLabel("Edit message").press("Enter");
      await b.getByRole("log").getByText("Hi Bob, how is it going?").waitFor();

      // Bob recalls his answer; it is gone from Alice's chat.
      const answer = b.getByRole("log").locator(".msg.mine", { hasText: "Hello Alice" });
      await answer.hover();
      await answer.getByRole("button", { name: "Recall" }).click();
      await a.getByRole("log").getByText("Message recalled").waitFor();
      assert.equal(await a.getByRole("log").getByText("Hello Alice").count(), 0);

      // An admin forces Alice out from the console.
      await fetch(`${node.url}/v1/auth/register`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ username: root, password: PASSWORD }),
      }).then((r) => r.body?.cancel());
      await grantRole(node.store, root, "admin");
      const c = await (await browser.newContext({ viewport: { width: 1400, height: 1000 } }))
        .newPage();
      c.setDefaultTimeout(20_000);
      await c.goto(node.url + "/admin");
      await c.getByLabel("Username").fill(root);
      await c.getByLabel("Password").fill(PASSWORD);
      await c.getByRole("button", { name: "Log in" }).click();
      const online = c.getByRole("region", { name: /Online users/ });
      await online.getByRole("cell", { name: alice, exact: true }).waitFor();
      await c.getByRole("region", { name: "Cluster (live)" }).getByRole("cell", {
        name: node.nodeId,
        exact: true,
      })
        .waitFor();
      if (SCREENSHOTS) await c.screenshot({ path: "docs/admin-console.png", fullPage: true });
      await online.getByRole("button", { name: `Force logout ${alice}` }).click();

      await a.getByRole("alert").filter({ hasText: "signed out by an administrator" }).waitFor();
      await a.getByRole("button", { name: "Log in" }).waitFor();
      // Bob stays online; the audit log names the action.
      assert.equal(await b.getByRole("status").filter({ hasText: "Online" }).count(), 1);
      await c.getByRole("region", { name: "Audit log" }).getByRole("cell", {
        name: "user.logout",
        exact: true,
      })
        .waitFor();
    } finally {
      await browser?.close();
      await node.stop();
    }
  },
});

/** A 1×1 PNG. */
const PNG = Uint8Array.fromBase64(
  "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==",
);

Deno.test({
  name: "the web client scrolls back through history, creates a group and sends an image",
  // See the first test: playwright-core's pipes and timers outlive browser.close().
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const node = await testNode();
    let browser: Browser | undefined;
    const { name: bobName, client: bc } = await signedUpClient(node.url, "bob");
    const carolName = uniq("carol");
    try {
      // Alice signs up in the browser; Bob befriends her and writes 40 messages beforehand.
      browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS });
      const a = await newPage(browser);
      const aliceName = uniq("alice");
      await signUpIn(a, node.url, aliceName);
      const found = await bc.request({ op: "user.search", query: aliceName });
      const alice = (found.users as { userId: string }[])[0].userId;
      await bc.request({ op: "friend.request", userId: alice });
      await a.getByRole("button", { name: `Accept ${bobName}` }).click();
      for (let i = 1; i <= 40; i++) {
        const ok = await bc.request({
          op: "send",
          to: { user: alice },
          cmid: `h${i}`,
          body: { type: "text", text: `history ${i}` },
        });
        assert.equal(ok.op, "ok");
      }
      await signUp(node.url, carolName, PASSWORD);

      const conv = a.getByRole("navigation", { name: "Conversations" }).getByRole("button", {
        name: new RegExp(bobName),
      });
      await conv.getByLabel("40 unread").waitFor();
      // After a reload the session and the inbox cursor come back from sessionStorage: nothing
      // is replayed, so the chat pages its history from the server.
      await a.reload();
      await a.getByRole("status").filter({ hasText: "Online" }).waitFor();
      await conv.getByLabel("40 unread").waitFor();
      await conv.click();
      const log = a.getByRole("log");
      await log.getByText("history 40", { exact: true }).waitFor();
      assert.equal(await log.getByText("history 1", { exact: true }).count(), 0);
      await a.getByRole("button", { name: "Load older messages" }).click();
      await log.getByText("history 1", { exact: true }).waitFor();
      assert.equal(await log.locator(".msg").count(), 40);

      // A group with Bob.
      await a.getByText("New group").click();
      await a.getByLabel("Group name").fill("Crew");
      await a.getByLabel(bobName).check();
      await a.getByRole("button", { name: "Create group" }).click();
      await a.getByRole("heading", { name: "Crew" }).waitFor();

      // An image into the group: Bob's client receives it, Alice's shows it.
      await a.locator("#attach").setInputFiles({
        name: "dot.png",
        mimeType: "image/png",
        buffer: Buffer.from(PNG),
      });
      const img = a.getByRole("log").getByRole("img", { name: "Image" }).first();
      // The pending copy and the stored one may both show for a moment (the push can beat the ok).
      await img.waitFor();
      // Loaded through the media route with the token (a blob: URL), so it has real pixels.
      // Polled with evaluate: waitForFunction's in-page poller needs eval, which the page's
      // Content-Security-Policy (script-src 'self') rightly forbids.
      const imageLoaded = `(() => {
        const el = document.querySelector(".messages img");
        return !!el && el.complete && el.naturalWidth === 1;
      })()`;
      const until = Date.now() + 10_000;
      while (!(await a.evaluate(imageLoaded))) {
        if (Date.now() > until) throw new Error("the sent image never loaded");
        await new Promise((r) => setTimeout(r, 50));
      }
      const got = await bc.waitFor(
        (f) => f.op === "msg" && String(f.conv).startsWith("g:"),
        5000,
        true,
      );
      assert.equal((got.body as { type: string }).type, "image");

      // Group administration from the members panel: Alice (owner) makes Bob an admin, removes
      // him, and adds him back; Bob's client sees each change as a system message.
      await a.locator(".chat-head summary", { hasText: "Members" }).click();
      const members = a.getByRole("region", { name: "Group members" });
      await members.getByRole("button", { name: `Make ${bobName} admin` }).click();
      await members.getByRole("button", { name: `Remove ${bobName} as admin` }).waitFor();
      await bc.waitFor((f) => f.op === "msg" && (f.body as F).event === "member.role", 5000, true);
      await members.getByRole("button", { name: `Remove ${bobName} from the group` }).click();
      await bc.waitFor(
        (f) => f.op === "msg" && (f.body as F).event === "member.kicked",
        5000,
        true,
      );
      await members.getByText("1 member", { exact: true }).waitFor();
      await members.getByLabel(bobName).check();
      await members.getByRole("button", { name: "Add to group" }).click();
      await bc.waitFor(
        (f) => f.op === "msg" && (f.body as F).event === "member.invited",
        5000,
        true,
      );
      await members.getByText("2 members", { exact: true }).waitFor();
      await a.getByRole("log").getByText(`${aliceName} added ${bobName}`).first().waitFor();

      // Muted, Bob cannot send to the group; unmuted, he can.
      const group = String(got.conv).slice(2);
      const say = (cmid: string) =>
        bc.request({ op: "send", to: { group }, cmid, body: { type: "text", text: cmid } });
      await members.getByRole("button", { name: `Mute ${bobName} for an hour` }).click();
      await bc.waitFor((f) => f.op === "msg" && (f.body as F).event === "member.muted", 5000, true);
      assert.equal((await say("while muted")).code, "muted");
      await members.getByRole("button", { name: `Unmute ${bobName}` }).click();
      await bc.waitFor(
        (f) => f.op === "msg" && (f.body as F).event === "member.unmuted",
        5000,
        true,
      );
      assert.equal((await say("unmuted")).op, "ok");

      // The owner dissolves the group (after confirming).
      a.once("dialog", (d) => d.accept());
      await members.getByRole("button", { name: "Dissolve group" }).click();
      await bc.waitFor(
        (f) => f.op === "msg" && (f.body as F).event === "group.dissolved",
        5000,
        true,
      );
      await members.getByText("The group is dissolved.").waitFor();
      await a.getByRole("navigation", { name: "Conversations" }).getByRole("button", {
        name: /Crew/,
      }).waitFor();
    } finally {
      await bc.close();
      await browser?.close();
      await node.stop();
    }
  },
});

Deno.test({
  name:
    "the web client edits a group's settings and mute-all, answers join requests, and joins an open group",
  // See the first test: playwright-core's pipes and timers outlive browser.close().
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const node = await testNode();
    let browser: Browser | undefined;
    const { name: carolName, client: cc } = await signedUpClient(node.url, "carol");
    const { name: daveName, client: dc } = await signedUpClient(node.url, "dave");
    try {
      browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS });
      const a = await newPage(browser);
      const aliceName = uniq("alice");
      await signUpIn(a, node.url, aliceName);

      // Alice makes a group on her own and opens its panel: settings, no join requests yet.
      await a.getByText("New group", { exact: true }).click();
      await a.getByLabel("Group name", { exact: true }).fill("Crew");
      await a.getByRole("button", { name: "Create group" }).click();
      await a.getByRole("heading", { name: "Crew" }).waitFor();
      await a.locator(".chat-head summary", { hasText: "Members" }).click();
      const panel = a.getByRole("region", { name: "Group members" });
      const settings = panel.getByRole("form", { name: "Group settings" });
      await panel.getByText("No join requests").waitFor();
      const group = (await panel.locator(".group-id code").textContent())!.trim();
      assert.match(group, /^g_/);

      // Carol asks to join; the request shows in the open panel, Alice approves it.
      const asked = await cc.request({ op: "group.join", group, message: "hi, it's Carol" });
      assert.equal(asked.status, "pending");
      const requests = panel.getByRole("region", { name: "Join requests" });
      await requests.getByText("Join requests (1)").waitFor();
      await requests.getByText("hi, it's Carol", { exact: false }).waitFor();
      await requests.getByRole("button", { name: `Approve ${carolName}` }).click();
      await cc.waitFor(
        (f) => f.op === "msg" && (f.body as F).event === "member.joined",
        5000,
        true,
      );
      await panel.getByText("2 members", { exact: true }).waitFor();

      // Dave asks too; Alice rejects, and Dave is told.
      assert.equal((await dc.request({ op: "group.join", group })).status, "pending");
      await requests.getByRole("button", { name: `Reject ${daveName}` }).click();
      await dc.waitFor((f) => f.op === "group.join_rejected" && f.group === group, 5000, true);
      await panel.getByText("No join requests").waitFor();

      // Settings: a new name and an announcement, joining open, only admins write.
      await settings.getByLabel("Group name").fill("Crew HQ");
      await settings.getByLabel("Announcement").fill("Be kind");
      await settings.getByLabel("Joining").selectOption("open");
      await settings.getByLabel("Only admins can write").check();
      await settings.getByRole("button", { name: "Save settings" }).click();
      const updated = await cc.waitFor((f) => f.op === "group.updated", 5000, true);
      assert.equal(updated.name, "Crew HQ");
      await cc.waitFor(
        (f) => f.op === "msg" && (f.body as F).event === "group.muted_all",
        5000,
        true,
      );
      await a.getByRole("heading", { name: "Crew HQ" }).waitFor();
      const info = await cc.request({ op: "group.info", group });
      assert.equal(info.announcement, "Be kind");
      assert.equal(info.joinPolicy, "open");
      assert.equal(info.muteAll, true);
      const said = await cc.request({
        op: "send",
        to: { group },
        cmid: "while all muted",
        body: { type: "text", text: "hello" },
      });
      assert.equal(said.code, "muted");

      // Alice joins Dave's open group from the sidebar by its id.
      const made = await dc.request({ op: "group.create", name: "Dave's", members: [] });
      const daves = String(made.groupId);
      await dc.request({ op: "group.update", group: daves, joinPolicy: "open" });
      await a.getByText("Join a group", { exact: true }).click();
      await a.getByLabel("Group id").fill(daves);
      await a.getByRole("button", { name: "Ask to join" }).click();
      await a.getByRole("heading", { name: "Dave's" }).waitFor();
      await dc.waitFor(
        (f) => f.op === "msg" && (f.body as F).event === "member.joined",
        5000,
        true,
      );
    } finally {
      await cc.close();
      await dc.close();
      await browser?.close();
      await node.stop();
    }
  },
});
