import assert from "node:assert/strict";
import { ConnectionDirectory, DIRECTORY_ADDRESS } from "./connection_directory.ts";
import { MemoryNetwork, MemoryTransport } from "./transport_memory.ts";
import type { Membership, NodeInfo } from "./membership.ts";

/** A membership view the test moves by hand (the port's contract is tested elsewhere). */
class View implements Pick<Membership, "liveNodes" | "onChange"> {
  nodes: NodeInfo[] = [];
  #handlers: ((n: NodeInfo[]) => void)[] = [];
  liveNodes() {
    return this.nodes;
  }
  onChange(h: (n: NodeInfo[]) => void) {
    this.#handlers.push(h);
  }
  set(ids: string[]) {
    this.nodes = ids.map((id) => ({ id, address: "", startedAt: 0 }));
    for (const h of this.#handlers) h(this.nodes);
  }
}

interface TestNode {
  id: string;
  view: View;
  dir: ConnectionDirectory;
  transport: MemoryTransport;
}

async function makeNode(id: string, ids: string[], network: MemoryNetwork): Promise<TestNode> {
  const view = new View();
  view.set(ids);
  const transport = new MemoryTransport({ nodeId: id, network });
  const dir = new ConnectionDirectory({ nodeId: id, transport, membership: view });
  await transport.serve((env) => {
    assert.equal(env.to, DIRECTORY_ADDRESS);
    return dir.handle(env);
  });
  return { id, view, dir, transport };
}

async function cluster(ids: string[], network = new MemoryNetwork()): Promise<TestNode[]> {
  const nodes: TestNode[] = [];
  for (const id of ids) nodes.push(await makeNode(id, ids, network));
  return nodes;
}

async function settled(dirs: ConnectionDirectory[], others: number): Promise<void> {
  // Until every node has merged the lists of the others, routes include every node.
  for (let i = 0; i < 200; i++) {
    if (dirs.every((d) => d.pendingNodes === 0)) return;
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error(`directories did not sync with ${others} other nodes`);
}

async function close(nodes: TestNode[]): Promise<void> {
  for (const n of nodes) {
    n.dir.close();
    await n.transport.close();
  }
}

Deno.test("a delivery is routed only to the nodes that hold its users' connections", async () => {
  const [a, b, c] = await cluster(["a", "b", "c"]);
  try {
    await settled([a.dir, b.dir, c.dir], 2);
    await b.dir.connected("u1");
    await c.dir.connected("u2");
    assert.deepEqual(a.dir.route(["u1"]), ["b"]);
    assert.deepEqual(a.dir.route(["u1", "u2"]).sort(), ["b", "c"]);
    assert.deepEqual(a.dir.route(["nobody"]), []);
    // A user connected here is routed here.
    await a.dir.connected("u3");
    assert.deepEqual(a.dir.route(["u3", "u1"]).sort(), ["a", "b"]);
    assert.equal(a.dir.isConnected("u3"), true);
    assert.equal(a.dir.isConnected("u1"), true);
    assert.equal(a.dir.isConnected("nobody"), false);
    // A second connection of u1 on b, then both close: a routes u1 to b until the last one.
    await b.dir.connected("u1");
    b.dir.disconnected("u1");
    await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(a.dir.route(["u1"]), ["b"]);
    b.dir.disconnected("u1");
    await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(a.dir.route(["u1"]), []);
    assert.equal(a.dir.isConnected("u1"), false);
  } finally {
    await close([a, b, c]);
  }
});

Deno.test("one user on two other nodes is routed to both; removing one keeps the other", async () => {
  const [a, b, c] = await cluster(["a", "b", "c"]);
  try {
    await settled([a.dir, b.dir, c.dir], 2);
    await b.dir.connected("u1");
    await c.dir.connected("u1");
    assert.deepEqual(a.dir.route(["u1"]).sort(), ["b", "c"]);
    assert.equal(a.dir.size, 2);
    c.dir.disconnected("u1");
    await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(a.dir.route(["u1"]), ["b"]);
  } finally {
    await close([a, b, c]);
  }
});

Deno.test("a node that joins routes to everyone until it has every list, then learns existing connections", async () => {
  const network = new MemoryNetwork();
  const [a, b] = await cluster(["a", "b"], network);
  try {
    await settled([a.dir, b.dir], 1);
    await b.dir.connected("u1");
    // Node d starts: before its dump of b is answered, it routes to b whatever the users.
    const d = await makeNode("d", ["a", "b", "d"], network);
    assert.deepEqual(d.dir.route(["nobody"]).sort(), ["a", "b"]);
    await settled([d.dir], 2);
    assert.deepEqual(d.dir.route(["u1"]), ["b"]);
    assert.deepEqual(d.dir.route(["nobody"]), []);
    // b does not see d yet (views lag), but d asked b for its list: b's next connection is
    // announced to d all the same.
    await b.dir.connected("u9");
    assert.deepEqual(d.dir.route(["u9"]), ["b"]);
    await close([d]);
  } finally {
    await close([a, b]);
  }
});

Deno.test("a node that leaves the view is forgotten with its connections", async () => {
  const [a, b, c] = await cluster(["a", "b", "c"]);
  try {
    await settled([a.dir, b.dir, c.dir], 2);
    await b.dir.connected("u1");
    await c.dir.connected("u1");
    a.view.set(["a", "c"]);
    assert.deepEqual(a.dir.route(["u1"]), ["c"]);
    a.view.set(["a"]);
    assert.deepEqual(a.dir.route(["u1"]), []);
    assert.equal(a.dir.size, 0);
  } finally {
    await close([a, b, c]);
  }
});

Deno.test("connected() waits at most the announce timeout for a node that does not answer", async () => {
  const network = new MemoryNetwork();
  const view = new View();
  view.set(["a", "ghost"]);
  const transport = new MemoryTransport({ nodeId: "a", network });
  const errors: string[] = [];
  const dir = new ConnectionDirectory({
    nodeId: "a",
    transport,
    membership: view,
    announceTimeoutMs: 50,
    onError: (what, node) => errors.push(`${what}:${node}`),
  });
  try {
    await dir.connected("u1");
    assert.ok(errors.includes("announce:ghost"), errors.join());
    // The silent node is still unsynced: deliveries keep going to it.
    assert.deepEqual(dir.route(["x"]), ["ghost"]);
    assert.deepEqual(dir.route(["u1"]).sort(), ["a", "ghost"]);
  } finally {
    dir.close();
    await transport.close();
  }
});

Deno.test("a lone node routes its own users to itself and everyone else nowhere", async () => {
  const [a] = await cluster(["a"]);
  try {
    assert.deepEqual(a.dir.route(["u1"]), []);
    await a.dir.connected("u1");
    assert.deepEqual(a.dir.route(["x", "u1"]), ["a"]);
    a.dir.disconnected("u1");
    assert.deepEqual(a.dir.route(["u1"]), []);
  } finally {
    await close([a]);
  }
});
