// Chat templates: tokenizer_config.json's Jinja `chat_template` rendered with @huggingface/jinja, with transformers' semantics.

import { Template } from '@huggingface/jinja';
import { isJsonObject, type JsonValue } from './json.js';

/** One part of a multimodal message's content, e.g. { type: 'text', text: '...' }. */
export interface ChatContentPart {
  type: string;
  [key: string]: unknown;
}

/** A chat message as transformers' templates read it: a role and a content (string, parts, or null with tool_calls). */
export interface ChatMessage {
  role: string;
  content?: string | readonly ChatContentPart[] | null;
  [key: string]: unknown;
}

export interface ChatTemplateOptions {
  /** Append the header that starts the assistant's reply (HF `add_generation_prompt`). Default false. */
  addGenerationPrompt?: boolean;
  /**
   * End the text right after the final message's content, leaving its turn open so that the model continues it (HF
   * `continue_final_message`); for prefilling the start of a reply. Not with addGenerationPrompt.
   */
  continueFinalMessage?: boolean;
  /** Return token ids (default, as transformers) or the rendered text (false). */
  tokenize?: boolean;
  /** A template name from the named-template list (default 'default'), or a Jinja template string to use instead. */
  chatTemplate?: string;
  /** Tool (function) JSON schemas, passed to the template as `tools`; templates without tool support ignore them. */
  tools?: readonly unknown[] | null;
  /** Documents for retrieval-augmented templates, passed as `documents`. */
  documents?: readonly unknown[] | null;
  /** Further variables for the template (HF's extra `**kwargs`), e.g. { enable_thinking: false }. */
  templateKwargs?: Record<string, unknown>;
}

const OPTION_KEYS = new Set(['addGenerationPrompt', 'continueFinalMessage', 'tokenize', 'chatTemplate', 'tools', 'documents', 'templateKwargs']);
/** Names the renderer sets itself: @huggingface/jinja refuses to redeclare its globals, and the others are the call's. */
const RESERVED_KWARGS = new Set(['messages', 'add_generation_prompt', 'tools', 'documents', 'raise_exception', 'range', 'strftime_now', 'true', 'false', 'none', 'True', 'False', 'None']);

/** Rough test for "this string is a template, not a template name" (transformers accepts either). */
const looksLikeTemplate = (s: string): boolean => s.includes('{{') || s.includes('{%');

function show(v: unknown): string {
  if (v === undefined) return 'nothing';
  const text = JSON.stringify(v) ?? String(v);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

/**
 * The chat template(s) of a tokenizer: tokenizer_config.json's `chat_template`, either one template string or the
 * named-template list [{ name, template }] that transformers writes when a model has several (e.g. 'default' and
 * 'tool_use'). Templates are compiled on first use, so a template this engine cannot parse only fails when used.
 */
export class ChatTemplates {
  private readonly templates: ReadonlyMap<string, string>;
  private readonly compiled = new Map<string, Template>();

  /** `value` is the config's chat_template (absent: none); `source` names the file in errors. */
  constructor(value: JsonValue | undefined, readonly source: string) {
    const templates = new Map<string, string>();
    if (typeof value === 'string') {
      templates.set('default', value);
    } else if (Array.isArray(value)) {
      value.forEach((entry, i) => {
        if (!isJsonObject(entry) || typeof entry.name !== 'string' || typeof entry.template !== 'string') {
          throw new Error(`${source}: chat_template[${i}] must be an object {"name": string, "template": string}, got ${show(entry)}`);
        }
        if (templates.has(entry.name)) throw new Error(`${source}: chat_template[${i}]: the name ${show(entry.name)} is used twice`);
        templates.set(entry.name, entry.template);
      });
    } else if (value !== undefined && value !== null) {
      throw new Error(`${source}: chat_template must be a template string or a list of {"name", "template"} objects, got ${show(value)}`);
    }
    this.templates = templates;
  }

  /** The templates as tokenizer_config.json writes them: one string, the named list, or null for none. */
  toJSON(): string | { name: string; template: string }[] | null {
    if (this.templates.size === 0) return null;
    const only = this.templates.get('default');
    if (this.templates.size === 1 && only !== undefined) return only;
    return [...this.templates].map(([name, template]) => ({ name, template }));
  }

  /** Names of the templates (['default'] for a single template string; [] when there is none). */
  get names(): string[] {
    return [...this.templates.keys()];
  }

  /** The template text chosen by `chatTemplate` (a name, or a template string), as transformers chooses. */
  select(chatTemplate?: string): { name: string; text: string } {
    if (chatTemplate !== undefined) {
      if (typeof chatTemplate !== 'string') throw new Error(`applyChatTemplate: chatTemplate must be a template name or a template string, got ${show(chatTemplate)}`);
      const named = this.templates.get(chatTemplate);
      if (named !== undefined) return { name: chatTemplate, text: named };
      if (looksLikeTemplate(chatTemplate)) return { name: '(chatTemplate option)', text: chatTemplate };
      throw new Error(
        this.templates.size === 0
          ? `${this.source}: no chat_template, so there is no template named ${show(chatTemplate)}; pass a Jinja template string as chatTemplate`
          : `${this.source}: no chat template named ${show(chatTemplate)}; the names are ${this.names.map((n) => show(n)).join(', ')}`,
      );
    }
    const text = this.templates.get('default');
    if (text !== undefined) return { name: 'default', text };
    if (this.templates.size === 0) {
      throw new Error(`${this.source}: no chat_template is set, so the tokenizer cannot format chats; add one to the file or pass a Jinja template string as chatTemplate`);
    }
    throw new Error(`${this.source}: the tokenizer has several chat templates and none is named 'default'; choose one with chatTemplate: ${this.names.map((n) => show(n)).join(', ')}`);
  }

  private compile(name: string, text: string): Template {
    const key = `${name}\u0000${text}`;
    let t = this.compiled.get(key);
    if (!t) {
      try {
        t = new Template(text);
      } catch (e) {
        throw new Error(`${this.source}: chat template ${show(name)} cannot be parsed: ${errorMessage(e)}`);
      }
      this.compiled.set(key, t);
    }
    return t;
  }

  /**
   * Renders `messages` to text. `specialTokens` are the tokenizer's special tokens (bos_token, eos_token, ...), given to
   * the template before `templateKwargs`, as transformers does.
   */
  render(messages: readonly ChatMessage[], opts: ChatTemplateOptions, specialTokens: Record<string, unknown>): string {
    checkOptions(opts);
    checkMessages(messages);
    const addGenerationPrompt = opts.addGenerationPrompt ?? false;
    const continueFinal = opts.continueFinalMessage ?? false;
    if (addGenerationPrompt && continueFinal) {
      throw new Error('applyChatTemplate: continueFinalMessage and addGenerationPrompt cannot both be set: the first continues the final message, the second starts a new assistant message');
    }
    const { name, text } = this.select(opts.chatTemplate);
    const template = this.compile(name, text);
    const kwargs = opts.templateKwargs ?? {};
    for (const key of Object.keys(kwargs)) {
      if (RESERVED_KWARGS.has(key)) throw new Error(`applyChatTemplate: templateKwargs.${key} is set by the renderer itself${key === 'messages' || key === 'tools' || key === 'documents' || key === 'add_generation_prompt' ? ' (use the option of that name)' : ''}`);
    }
    const context = (msgs: readonly ChatMessage[]): Record<string, unknown> => ({
      ...specialTokens,
      ...kwargs,
      messages: msgs,
      tools: opts.tools ?? null,
      documents: opts.documents ?? null,
      add_generation_prompt: addGenerationPrompt,
    });
    let rendered: string;
    try {
      rendered = template.render(context(messages));
    } catch (e) {
      const at = failingMessage(template, messages, context);
      const where = at === null ? '' : ` (at messages[${at}], role ${show(messages[at]!.role)})`;
      throw new Error(`${this.source}: chat template ${show(name)} failed: ${errorMessage(e)}${where}`);
    }
    return continueFinal ? cutAfterFinalMessage(rendered, messages) : rendered;
  }
}

/**
 * The index of the message that makes rendering fail: the first k for which messages[0..k] fails while messages[0..k-1]
 * renders. Null when even no messages fail the same way (the error does not come from a message).
 */
function failingMessage(template: Template, messages: readonly ChatMessage[], context: (m: readonly ChatMessage[]) => Record<string, unknown>): number | null {
  const fails = (n: number): boolean => {
    try {
      template.render(context(messages.slice(0, n)));
      return false;
    } catch {
      return true;
    }
  };
  if (fails(0)) return null;
  for (let k = 1; k <= messages.length; k++) if (fails(k)) return k - 1;
  return null;
}

/** transformers' continue_final_message: keep the text up to the end of the final message's content. */
function cutAfterFinalMessage(rendered: string, messages: readonly ChatMessage[]): string {
  if (messages.length === 0) throw new Error('applyChatTemplate: continueFinalMessage needs at least one message');
  let final = messages[messages.length - 1]!.content;
  if (Array.isArray(final)) {
    const parts = final as readonly ChatContentPart[];
    const text = [...parts].reverse().find((p) => typeof p.text === 'string');
    if (!text) throw new Error('applyChatTemplate: continueFinalMessage is set but the final message has no text part to continue');
    final = text.text as string;
  }
  if (typeof final !== 'string') throw new Error('applyChatTemplate: continueFinalMessage is set but the final message has no text content');
  const at = rendered.lastIndexOf(final.trim());
  if (final.trim() === '' || at < 0) throw new Error('applyChatTemplate: continueFinalMessage is set but the final message does not appear in the rendered chat');
  // The template may strip the message's trailing space: then end where the stripped text ends.
  const keep = rendered.slice(at, at + final.trimStart().length) === final.trimStart() ? final.trimStart().length : final.trim().length;
  return rendered.slice(0, at + keep);
}

function checkOptions(opts: ChatTemplateOptions): void {
  if (!isJsonObject(opts as unknown)) throw new Error(`applyChatTemplate: options must be an object, got ${show(opts)}`);
  for (const key of Object.keys(opts)) {
    if (!OPTION_KEYS.has(key)) {
      throw new Error(`applyChatTemplate: unknown option ${show(key)} (options: ${[...OPTION_KEYS].join(', ')}; template variables go in templateKwargs)`);
    }
  }
  for (const key of ['addGenerationPrompt', 'continueFinalMessage', 'tokenize'] as const) {
    const v = opts[key];
    if (v !== undefined && typeof v !== 'boolean') throw new Error(`applyChatTemplate: ${key} must be true or false, got ${show(v)}`);
  }
  for (const key of ['tools', 'documents'] as const) {
    const v = opts[key];
    if (v !== undefined && v !== null && !Array.isArray(v)) throw new Error(`applyChatTemplate: ${key} must be an array, got ${show(v)}`);
  }
  const kw = opts.templateKwargs;
  if (kw !== undefined && !isJsonObject(kw as unknown)) throw new Error(`applyChatTemplate: templateKwargs must be an object, got ${show(kw)}`);
}

/** Every message needs a string role and a content (a string, a list of parts, or null beside tool_calls). */
export function checkMessages(messages: readonly ChatMessage[], what = 'applyChatTemplate'): void {
  if (!Array.isArray(messages)) throw new Error(`${what}: messages must be an array of { role, content } objects, got ${show(messages)}`);
  messages.forEach((m: unknown, i) => {
    if (!isJsonObject(m)) throw new Error(`${what}: messages[${i}] must be an object { role, content }, got ${show(m)}`);
    if (m.role === undefined) throw new Error(`${what}: messages[${i}] has no role (such as "user" or "assistant")`);
    if (typeof m.role !== 'string' || m.role === '') throw new Error(`${what}: messages[${i}].role must be a non-empty string such as "user", got ${show(m.role)}`);
    const content = m.content;
    const ok = typeof content === 'string' || Array.isArray(content) || ((content === null || content === undefined) && 'tool_calls' in m);
    if (!ok) {
      throw new Error(
        content === undefined && !('tool_calls' in m)
          ? `${what}: messages[${i}] (role ${show(m.role)}) has no content`
          : `${what}: messages[${i}].content must be a string or a list of parts, got ${show(content)}`,
      );
    }
  });
}

function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
