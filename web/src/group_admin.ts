/// <reference no-default-lib="true" />
/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
/// <reference lib="esnext" />
/**
 * The group screens of the web client beside the member list: the group's profile and policies
 * (everyone reads them; admins and the owner edit them and switch mute-all), the pending join
 * requests (admins and the owner approve or reject them), and the form that asks to join a group
 * by its id. Builders only: the caller (app.ts) makes the requests and redraws, so each builder
 * shows exactly the state it is given.
 *
 * @module
 */
import { clock, h } from "./dom.ts";

/** What the screens need of a `group.info` answer (protocol.md, "group.info"). */
export interface GroupInfo {
  groupId: string;
  name: string;
  description: string;
  announcement: string;
  invitePolicy: "anyone" | "admins";
  joinPolicy: "approval" | "open" | "closed";
  muteAll: boolean;
  role: "owner" | "admin" | "member";
}

/** A change to save: `group.update` fields (only those that differ) and mute-all when it did. */
export interface GroupChanges {
  update: Partial<
    Pick<GroupInfo, "name" | "description" | "announcement" | "invitePolicy" | "joinPolicy">
  >;
  muteAll?: boolean;
}

/** A pending join request (protocol.md, "group.requests"). */
export interface JoinRequest {
  userId: string;
  message: string;
  ts: number;
}

const JOIN_POLICIES: Record<GroupInfo["joinPolicy"], string> = {
  approval: "on request (admins approve)",
  open: "open to anyone with the id",
  closed: "closed (members are added)",
};

const INVITE_POLICIES: Record<GroupInfo["invitePolicy"], string> = {
  anyone: "every member",
  admins: "admins only",
};

function select<T extends string>(id: string, options: Record<T, string>, value: T) {
  return h(
    "select",
    { id },
    ...Object.entries<string>(options).map(([v, text]) =>
      h("option", { value: v, selected: v === value }, text)
    ),
  );
}

/**
 * The group's profile and policies. Admins and the owner get a form; saving calls `save` with
 * the fields that changed (nothing when none did). Members read the same as text.
 */
export function groupSettingsEl(
  info: GroupInfo,
  save: (changes: GroupChanges) => void,
): HTMLElement {
  const idLine = h(
    "p",
    { class: "group-id" },
    "Group id (to share for joining): ",
    h(
      "code",
      null,
      info.groupId,
    ),
  );
  if (info.role === "member") {
    return h(
      "section",
      { class: "group-settings", "aria-label": "Group settings" },
      info.announcement ? h("p", { class: "announcement" }, info.announcement) : null,
      info.description ? h("p", null, info.description) : null,
      h("p", null, `Joining: ${JOIN_POLICIES[info.joinPolicy]}.`),
      h("p", null, `Who adds members: ${INVITE_POLICIES[info.invitePolicy]}.`),
      info.muteAll ? h("p", null, "Only admins can write right now.") : null,
      idLine,
    );
  }
  const name = h("input", { id: "gs-name", maxlength: 100, required: true, value: info.name });
  const announcement = h("textarea", { id: "gs-announcement", maxlength: 4000, rows: 2 });
  announcement.value = info.announcement;
  const description = h("textarea", { id: "gs-description", maxlength: 1000, rows: 2 });
  description.value = info.description;
  const invite = select("gs-invite", INVITE_POLICIES, info.invitePolicy);
  const join = select("gs-join", JOIN_POLICIES, info.joinPolicy);
  const muteAll = h("input", { id: "gs-mute-all", type: "checkbox", checked: info.muteAll });
  return h(
    "form",
    {
      class: "group-settings",
      "aria-label": "Group settings",
      onsubmit: (ev: Event) => {
        ev.preventDefault();
        const changes: GroupChanges = { update: {} };
        const trimmed = name.value.trim();
        if (trimmed && trimmed !== info.name) changes.update.name = trimmed;
        if (announcement.value !== info.announcement) {
          changes.update.announcement = announcement.value;
        }
        if (description.value !== info.description) {
          changes.update.description = description.value;
        }
        if (invite.value !== info.invitePolicy) {
          changes.update.invitePolicy = invite.value as GroupInfo["invitePolicy"];
        }
        if (join.value !== info.joinPolicy) {
          changes.update.joinPolicy = join.value as GroupInfo["joinPolicy"];
        }
        if (muteAll.checked !== info.muteAll) changes.muteAll = muteAll.checked;
        save(changes);
      },
    },
    h("label", { for: "gs-name" }, "Group name"),
    name,
    h("label", { for: "gs-announcement" }, "Announcement"),
    announcement,
    h("label", { for: "gs-description" }, "Description"),
    description,
    h("label", { for: "gs-invite" }, "Who adds members"),
    invite,
    h("label", { for: "gs-join" }, "Joining"),
    join,
    h(
      "div",
      { class: "pick" },
      muteAll,
      h("label", { for: "gs-mute-all" }, "Only admins can write"),
    ),
    idLine,
    h("button", { type: "submit" }, "Save settings"),
  );
}

/** Pending join requests with Approve and Reject for each (admins and the owner). */
export function joinRequestsEl(
  requests: JoinRequest[],
  count: number,
  nameOf: (userId: string) => string,
  answer: (userId: string, approve: boolean) => void,
): HTMLElement {
  return h(
    "section",
    { class: "join-requests", "aria-label": "Join requests" },
    h("h3", null, count === 0 ? "No join requests" : `Join requests (${count})`),
    requests.length > 0
      ? h(
        "ul",
        { class: "member-list" },
        ...requests.map((r) => {
          const who = nameOf(r.userId);
          return h(
            "li",
            null,
            h("span", { class: "name" }, who),
            h(
              "span",
              { class: "role" },
              r.message ? `“${r.message}”, ${clock(r.ts)}` : clock(r.ts),
            ),
            h(
              "button",
              {
                type: "button",
                "aria-label": `Approve ${who}`,
                onclick: () => answer(r.userId, true),
              },
              "Approve",
            ),
            h(
              "button",
              {
                type: "button",
                class: "secondary",
                "aria-label": `Reject ${who}`,
                onclick: () => answer(r.userId, false),
              },
              "Reject",
            ),
          );
        }),
      )
      : null,
    requests.length < count ? h("p", null, `Showing the first ${requests.length}.`) : null,
  );
}

/** The sidebar form that asks to join a group by its id (with an optional message). */
export function joinGroupForm(join: (group: string, message: string) => Promise<boolean>) {
  const group = h("input", { id: "join-group", required: true, autocomplete: "off" });
  const message = h("input", { id: "join-message", maxlength: 500 });
  const details = h(
    "details",
    { class: "new-group" },
    h("summary", null, "Join a group"),
    h(
      "form",
      {
        onsubmit: async (ev: Event) => {
          ev.preventDefault();
          if (await join(group.value.trim(), message.value.trim())) {
            group.value = "";
            message.value = "";
            details.open = false;
          }
        },
      },
      h("label", { for: "join-group" }, "Group id"),
      group,
      h("label", { for: "join-message" }, "Note to the admins (optional)"),
      message,
      h("button", { type: "submit" }, "Ask to join"),
    ),
  );
  return details;
}
