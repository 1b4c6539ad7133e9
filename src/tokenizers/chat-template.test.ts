// Chat templates: the real ChatML (Qwen2), Llama-3, Zephyr and Mistral templates against strings worked out by hand; bad input.

import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import '../autograd/methods.js';
import type { ChatMessage } from './chat-template.js';
import { AutoTokenizer, Tokenizer } from './tokenizer.js';

const tokDir = new URL('../../test/data/tokenizers/', import.meta.url).pathname;
const chatDir = new URL('../../test/data/chat/', import.meta.url).pathname;
const TEMPLATES = JSON.parse(await readFile(join(chatDir, 'templates.json'), 'utf8')) as Record<'chatml' | 'llama3' | 'zephyr' | 'mistral', { template: string }>;
const CHATML = TEMPLATES.chatml.template, LLAMA3 = TEMPLATES.llama3.template, ZEPHYR = TEMPLATES.zephyr.template, MISTRAL = TEMPLATES.mistral.template;

const SPECIALS = ['<|im_start|>', '<|im_end|>', '<|begin_of_text|>', '<|start_header_id|>', '<|end_header_id|>', '<|eot_id|>', '<|user|>', '<|assistant|>', '<|system|>', '</s>'];
const byteLevel = JSON.parse(await readFile(join(tokDir, 'bytelevel-bpe.json'), 'utf8')) as { added_tokens: object[]; model: { vocab: object } };

/** The byte-level BPE fixture with the chat special tokens added (ids 1000...). */
function chatTokenizer(config: Record<string, unknown>): Tokenizer {
  const json = structuredClone(byteLevel);
  const base = Object.keys(json.model.vocab).length;
  SPECIALS.forEach((content, i) => json.added_tokens.push({ id: base + i, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }));
  return Tokenizer.fromJSON(json, { bos_token: '<|begin_of_text|>', eos_token: '</s>', ...config }, 'test tokenizer.json', 'test/tokenizer_config.json');
}

const CHAT: ChatMessage[] = [
  { role: 'system', content: 'You are terse.' },
  { role: 'user', content: 'Hi' },
  { role: 'assistant', content: 'Hello!' },
  { role: 'user', content: '2+2?' },
];

describe('ChatML (Qwen2-Instruct)', () => {
  const tok = chatTokenizer({ chat_template: CHATML });
  test('multi-turn with a system message, with and without the generation prompt', () => {
    expect(tok.applyChatTemplate(CHAT, { tokenize: false })).toBe(
      '<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n',
    );
    expect(tok.applyChatTemplate(CHAT, { tokenize: false, addGenerationPrompt: true })).toBe(
      '<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n',
    );
  });
  test('without a system message the template adds its default one', () => {
    expect(tok.applyChatTemplate([{ role: 'user', content: 'Hi' }], { tokenize: false })).toBe('<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n');
  });
  test('tokenize: the special tokens are single ids and nothing is added around the text', () => {
    const ids = tok.applyChatTemplate([{ role: 'user', content: 'Hi' }], { addGenerationPrompt: true });
    const start = tok.tokenToId('<|im_start|>')!, end = tok.tokenToId('<|im_end|>')!;
    const enc = (s: string): number[] => tok.encode(s, { addSpecialTokens: false }).ids;
    expect(ids).toEqual([start, ...enc('system\nYou are a helpful assistant.'), end, ...enc('\n'), start, ...enc('user\nHi'), end, ...enc('\n'), start, ...enc('assistant\n')]);
    expect(tok.applyChatTemplate([{ role: 'user', content: 'Hi' }], { tokenize: true })).toEqual(ids.slice(0, ids.length - 1 - enc('assistant\n').length));
  });
  test('continueFinalMessage leaves the final turn open', () => {
    const msgs: ChatMessage[] = [{ role: 'system', content: 'S' }, { role: 'user', content: 'Hi' }, { role: 'assistant', content: 'The answer is' }];
    expect(tok.applyChatTemplate(msgs, { tokenize: false, continueFinalMessage: true })).toBe('<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nThe answer is');
    expect(() => tok.applyChatTemplate(msgs, { continueFinalMessage: true, addGenerationPrompt: true })).toThrow(/cannot both be set/);
  });
  test('tools are passed to the template and ignored by one that does not use them', () => {
    const tools = [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: {} } } }];
    expect(tok.applyChatTemplate(CHAT, { tokenize: false, tools })).toBe(tok.applyChatTemplate(CHAT, { tokenize: false }));
    const t = chatTokenizer({ chat_template: '{% if tools %}[{{ tools[0].function.name }}]{% endif %}{% for m in messages %}{{ m.content }}{% endfor %}' });
    expect(t.applyChatTemplate([{ role: 'user', content: 'x' }], { tokenize: false, tools })).toBe('[get_weather]x');
    expect(t.applyChatTemplate([{ role: 'user', content: 'x' }], { tokenize: false })).toBe('x');
  });
});

describe('Llama-3-Instruct', () => {
  const tok = chatTokenizer({ chat_template: LLAMA3 });
  test('bos from the config, contents trimmed, generation prompt', () => {
    const msgs: ChatMessage[] = [{ role: 'system', content: ' Be brief. ' }, { role: 'user', content: 'Hi' }, { role: 'assistant', content: 'Hello!\n' }];
    const body = '<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|>';
    expect(tok.applyChatTemplate(msgs, { tokenize: false })).toBe(body);
    expect(tok.applyChatTemplate(msgs.slice(0, 2), { tokenize: false, addGenerationPrompt: true })).toBe(
      '<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n',
    );
  });
  test('the bos token is the config\'s', () => {
    const t = chatTokenizer({ chat_template: LLAMA3, bos_token: '<s>' });
    expect(t.applyChatTemplate([{ role: 'user', content: 'Hi' }], { tokenize: false })).toBe('<s><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>');
  });
});

describe('Zephyr', () => {
  const tok = chatTokenizer({ chat_template: ZEPHYR });
  test('block tags leave no newlines (trim_blocks, lstrip_blocks); eos after each turn', () => {
    expect(tok.applyChatTemplate(CHAT, { tokenize: false, addGenerationPrompt: true })).toBe(
      '<|system|>\nYou are terse.</s>\n<|user|>\nHi</s>\n<|assistant|>\nHello!</s>\n<|user|>\n2+2?</s>\n<|assistant|>\n',
    );
    expect(tok.applyChatTemplate(CHAT.slice(1, 3), { tokenize: false })).toBe('<|user|>\nHi</s>\n<|assistant|>\nHello!</s>\n');
  });
});

describe('Mistral (raise_exception) and a LLaMA-style tokenizer', () => {
  test('the template writes the bos; tokenizing does not add a second', async () => {
    const json = JSON.parse(await readFile(join(tokDir, 'bpe-bytefallback.json'), 'utf8')) as unknown;
    const tok = Tokenizer.fromJSON(json, { chat_template: MISTRAL, bos_token: '<s>', eos_token: '</s>' });
    expect(tok.encode('Hi').ids[0]).toBe(1); // this tokenizer's post-processor prepends <s> (id 1) to plain text
    const msgs: ChatMessage[] = [{ role: 'user', content: 'Hi' }, { role: 'assistant', content: 'Yo' }];
    expect(tok.applyChatTemplate(msgs, { tokenize: false })).toBe('<s>[INST] Hi [/INST]Yo</s>');
    const ids = tok.applyChatTemplate(msgs);
    expect(ids[0]).toBe(1);
    expect(ids[1]).not.toBe(1);
    expect(ids.filter((i) => i === 1)).toHaveLength(1);
    expect(ids[ids.length - 1]).toBe(2);
  });
  test('raise_exception: the template\'s message and the index of the message that broke it', () => {
    const tok = chatTokenizer({ chat_template: MISTRAL });
    const bad: ChatMessage[] = [{ role: 'user', content: 'a' }, { role: 'assistant', content: 'b' }, { role: 'assistant', content: 'c' }];
    expect(() => tok.applyChatTemplate(bad)).toThrow('Conversation roles must alternate user/assistant/user/assistant/... (at messages[2], role "assistant")');
    expect(() => tok.applyChatTemplate([{ role: 'system', content: 's' }, { role: 'user', content: 'u' }])).toThrow(/test\/tokenizer_config.json: chat template "default" failed: Conversation roles must alternate.*at messages\[0\], role "system"/);
  });
});

describe('named templates, kwargs, helpers', () => {
  const TOOL = '{% for m in messages %}{{ m.role }}:{{ m.content }};{% endfor %}tools={{ tools | length }}';
  test('the list form: default unless another is named; unknown names list the names', () => {
    const tok = chatTokenizer({ chat_template: [{ name: 'default', template: CHATML }, { name: 'tool_use', template: TOOL }] });
    expect(tok.chatTemplateNames).toEqual(['default', 'tool_use']);
    const m: ChatMessage[] = [{ role: 'user', content: 'Hi' }];
    expect(tok.applyChatTemplate(m, { tokenize: false })).toContain('<|im_start|>user\nHi<|im_end|>');
    expect(tok.applyChatTemplate(m, { tokenize: false, chatTemplate: 'tool_use', tools: [{}, {}] })).toBe('user:Hi;tools=2');
    expect(() => tok.applyChatTemplate(m, { chatTemplate: 'rag' })).toThrow('test/tokenizer_config.json: no chat template named "rag"; the names are "default", "tool_use"');
    const noDefault = chatTokenizer({ chat_template: [{ name: 'tool_use', template: TOOL }, { name: 'rag', template: TOOL }] });
    expect(() => noDefault.applyChatTemplate(m)).toThrow(/none is named 'default'; choose one with chatTemplate: "tool_use", "rag"/);
    expect(tok.chatTemplate).toEqual([{ name: 'default', template: CHATML }, { name: 'tool_use', template: TOOL }]);
    // A template string in place of a name is used as the template (transformers does the same).
    expect(noDefault.applyChatTemplate(m, { tokenize: false, chatTemplate: '{{ messages[0].content }}!' })).toBe('Hi!');
  });
  test('chatTemplate can be read and set, as HF\'s tokenizer.chat_template', () => {
    const tok = chatTokenizer({});
    expect(tok.chatTemplate).toBeNull();
    expect(() => tok.applyChatTemplate([{ role: 'user', content: 'Hi' }])).toThrow('test/tokenizer_config.json: no chat_template is set');
    tok.chatTemplate = ZEPHYR;
    expect(tok.chatTemplate).toBe(ZEPHYR);
    expect(tok.applyChatTemplate([{ role: 'user', content: 'Hi' }], { tokenize: false })).toBe('<|user|>\nHi</s>\n');
    expect(() => { tok.chatTemplate = 5 as never; }).toThrow('chat_template must be a template string or a list');
  });
  test('template kwargs, special tokens and strftime_now reach the template', () => {
    const tok = chatTokenizer({ chat_template: '{{ greeting }} {{ bos_token }}{{ eos_token }} {{ strftime_now("%Y-%m-%d") }}', pad_token: '<|im_end|>' });
    const pad = (n: number): string => String(n).padStart(2, '0');
    const today = (d = new Date()): string => `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
    const before = today();
    const out = tok.applyChatTemplate([], { tokenize: false, templateKwargs: { greeting: 'hello' } });
    expect([`hello <|begin_of_text|></s> ${before}`, `hello <|begin_of_text|></s> ${today()}`]).toContain(out);
    const padTok = chatTokenizer({ chat_template: '{{ pad_token }}', pad_token: '<|im_end|>' });
    expect(padTok.applyChatTemplate([], { tokenize: false })).toBe('<|im_end|>');
  });
});

describe('bad input', () => {
  const tok = chatTokenizer({ chat_template: CHATML });
  test('a message without role or content names its index', () => {
    expect(() => tok.applyChatTemplate([{ role: 'user', content: 'a' }, { content: 'b' } as unknown as ChatMessage])).toThrow('applyChatTemplate: messages[1] has no role');
    expect(() => tok.applyChatTemplate([{ role: 'user' }])).toThrow('applyChatTemplate: messages[0] (role "user") has no content');
    expect(() => tok.applyChatTemplate([{ role: 'user', content: 3 } as unknown as ChatMessage])).toThrow('messages[0].content must be a string or a list of parts, got 3');
    expect(() => tok.applyChatTemplate('hi' as unknown as ChatMessage[])).toThrow('messages must be an array');
    // An assistant turn with tool calls may have no content.
    const t = chatTokenizer({ chat_template: '{% for m in messages %}{{ m.role }}{% endfor %}' });
    expect(t.applyChatTemplate([{ role: 'assistant', content: null, tool_calls: [] }], { tokenize: false })).toBe('assistant');
  });
  test('a template that fails while rendering: its error and the message index', () => {
    const t = chatTokenizer({ chat_template: "{% for m in messages %}{% if m.role == 'tool' %}{{ no_such_function() }}{% endif %}{{ m.content }}{% endfor %}" });
    expect(() => t.applyChatTemplate([{ role: 'user', content: 'a' }, { role: 'tool', content: 'b' }])).toThrow(/chat template "default" failed: .*not a function.* \(at messages\[1\], role "tool"\)/);
    // An error that does not come from a message names none.
    const always = chatTokenizer({ chat_template: '{{ no_such_function() }}' });
    expect(() => always.applyChatTemplate([{ role: 'user', content: 'a' }])).toThrow(/failed: Cannot call something that is not a function: got UndefinedValue$/);
  });
  test('a template that cannot be parsed names the file; loading still works', () => {
    const t = chatTokenizer({ chat_template: '{% if %}' });
    expect(t.encode('hi').ids.length).toBeGreaterThan(0);
    expect(() => t.applyChatTemplate([{ role: 'user', content: 'a' }])).toThrow(/^test\/tokenizer_config.json: chat template "default" cannot be parsed: /);
  });
  test('malformed chat_template values are refused when the tokenizer loads', () => {
    expect(() => chatTokenizer({ chat_template: 3 })).toThrow('test/tokenizer_config.json: chat_template must be a template string or a list');
    expect(() => chatTokenizer({ chat_template: [{ name: 'default' }] })).toThrow('chat_template[0] must be an object {"name": string, "template": string}');
  });
  test('options: unknown keys, wrong types, reserved template variables', () => {
    const m: ChatMessage[] = [{ role: 'user', content: 'a' }];
    expect(() => tok.applyChatTemplate(m, { add_generation_prompt: true } as never)).toThrow(/unknown option "add_generation_prompt".*templateKwargs/);
    expect(() => tok.applyChatTemplate(m, { addGenerationPrompt: 'yes' } as never)).toThrow('addGenerationPrompt must be true or false, got "yes"');
    expect(() => tok.applyChatTemplate(m, { templateKwargs: { messages: [] } })).toThrow('templateKwargs.messages is set by the renderer itself (use the option of that name)');
    expect(() => tok.applyChatTemplate(m, { tools: {} as never })).toThrow('tools must be an array');
  });
  test('no chat_template: the error names the config file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'attend-chat-'));
    await writeFile(join(dir, 'tokenizer.json'), JSON.stringify(byteLevel));
    await writeFile(join(dir, 'tokenizer_config.json'), JSON.stringify({ eos_token: '<|endoftext|>' }));
    const tok = await AutoTokenizer.fromPretrained(dir);
    expect(tok.chatTemplateNames).toEqual([]);
    expect(() => tok.applyChatTemplate([{ role: 'user', content: 'a' }])).toThrow(`${dir}/tokenizer_config.json: no chat_template is set`);
    // chat_template in tokenizer_config.json is read; chat_template.jinja beside it (newer transformers) wins.
    await writeFile(join(dir, 'tokenizer_config.json'), JSON.stringify({ eos_token: '<|endoftext|>', chat_template: '{{ messages[0].content }}{{ eos_token }}' }));
    expect((await AutoTokenizer.fromPretrained(dir)).applyChatTemplate([{ role: 'user', content: 'a' }], { tokenize: false })).toBe('a<|endoftext|>');
    await writeFile(join(dir, 'chat_template.jinja'), '[{{ messages[0].content }}]');
    expect((await AutoTokenizer.fromPretrained(dir)).applyChatTemplate([{ role: 'user', content: 'a' }], { tokenize: false })).toBe('[a]');
  });
});
