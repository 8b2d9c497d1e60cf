/**
 * The actor runtime's public face: how to define an actor kind (the behaviour API), the errors
 * with their stable codes, the host that runs activations on a node, its hooks, and the
 * mailbox.
 *
 * Guarantees (detailed on each module and in docs/extending.md): one activation per actor
 * cluster-wide (placement claim + store fencing), one turn at a time per actor in FIFO order,
 * bounded mailboxes (`overloaded`), expired deadlines dropped unrun (`timeout`), a fenced or
 * lease-less activation stopped without further writes (`moved`), passivation with a snapshot
 * after an idle time.
 *
 * The built-in IM kinds live in `actors/im/mod.ts`.
 *
 * @module
 */
export * from "./behavior.ts";
export * from "./errors.ts";
export * from "./host.ts";
export * from "./hooks.ts";
export * from "./mailbox.ts";
