/**
 * HTTP error answers: every error body is `{"error": {"code", "message"}}` (PROTOCOL-CORE.md).
 *
 * {@link httpError} turns anything thrown in a route into that body with the status of its
 * code. Client errors (4xx) keep their message, which routes write for humans. Server-side
 * failures (5xx) get a fixed message per code, so nothing internal (SQL, hostnames, stack
 * details) reaches the client; the error itself goes to the logger.
 *
 * @module
 */
import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { type ErrorCode, ImError } from "../actors/errors.ts";
import type { Logger } from "../observability/log.ts";

/** The body of every HTTP error answer. */
export interface ErrorBody {
  error: { code: string; message: string };
}

/** The logger methods error handling uses. */
export type ErrorLogger = Pick<Logger, "warn" | "error">;

/** HTTP status per error code. Codes not listed are answered 500 `internal`. */
export const HTTP_STATUS: Readonly<Partial<Record<ErrorCode, ContentfulStatusCode>>> = {
  bad_request: 400,
  bad_frame: 400,
  invalid_credentials: 401,
  invalid_token: 401,
  unauthenticated: 401,
  forbidden: 403,
  not_member: 403,
  not_found: 404,
  username_taken: 409,
  too_large: 413,
  unsupported_type: 415,
  rate_limited: 429,
  internal: 500,
  unavailable: 503,
  overloaded: 503,
  timeout: 503,
  moved: 503,
  fenced: 503,
};

/** Fixed client-facing messages of server-side codes. */
const SERVER_MESSAGES: Partial<Record<ErrorCode, string>> = {
  internal: "Internal error",
  unavailable: "Service temporarily unavailable, retry later",
  overloaded: "Server busy, retry later",
  timeout: "The request timed out, retry later",
  moved: "Service temporarily unavailable, retry later",
  fenced: "Service temporarily unavailable, retry later",
};

/** The status an error code is answered with. */
export function statusOf(code: ErrorCode): ContentfulStatusCode {
  return HTTP_STATUS[code] ?? 500;
}

/** `{"error": {"code", "message"}}`. */
export function errorBody(code: string, message: string): ErrorBody {
  return { error: { code, message } };
}

/** A JSON error answer with the status of `code` (or `status` when given). */
export function errorResponse(
  c: Context,
  code: ErrorCode,
  message: string,
  status: ContentfulStatusCode = statusOf(code),
): Response {
  return c.json(errorBody(code, message), status);
}

/**
 * Answers a thrown value (use as `app.onError((err, c) => httpError(c, err, logger))`):
 * - ImError → its code, the status of {@link HTTP_STATUS}, its message for 4xx and a fixed one
 *   for 5xx; 5xx are logged.
 * - Hono HTTPException (e.g. a middleware refusing a request) with a 4xx status → that status
 *   and a code that fits it; other statuses → 500 `internal`.
 * - Anything else → 500 `internal` with message "Internal error", logged.
 */
export function httpError(c: Context, err: unknown, logger?: ErrorLogger): Response {
  if (err instanceof ImError) {
    const status = statusOf(err.code);
    if (status >= 500) {
      const code = HTTP_STATUS[err.code] ? err.code : "internal";
      logger?.[code === "internal" ? "error" : "warn"]("HTTP request failed", {
        path: c.req.path,
        err,
      });
      return errorResponse(c, code, SERVER_MESSAGES[code] ?? "Internal error", status);
    }
    if (err.code === "rate_limited") c.header("Retry-After", "1");
    return errorResponse(c, err.code, err.message, status);
  }
  if (err instanceof HTTPException && err.status >= 400 && err.status < 500) {
    const status = err.status as ContentfulStatusCode;
    return errorResponse(c, codeForStatus(status), httpExceptionMessage(status), status);
  }
  logger?.error("HTTP request failed", { path: c.req.path, err });
  return errorResponse(c, "internal", "Internal error", 500);
}

function codeForStatus(status: number): ErrorCode {
  switch (status) {
    case 401:
      return "unauthenticated";
    case 403:
      return "forbidden";
    case 404:
      return "not_found";
    case 429:
      return "rate_limited";
    default:
      return "bad_request";
  }
}

function httpExceptionMessage(status: number): string {
  switch (status) {
    case 401:
      return "Authentication required";
    case 403:
      return "Forbidden";
    case 404:
      return "Not found";
    case 413:
      return "Request body too large";
    case 429:
      return "Too many requests";
    default:
      return "Bad request";
  }
}
