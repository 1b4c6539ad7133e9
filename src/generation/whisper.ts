// Whisper's decoder prompt as transformers builds it: start token, language (given or detected), task, no timestamps.

import type { GenerationDefaults } from '../models/base.js';

/** Whisper's languages, code -> name (openai/whisper tokenizer.py LANGUAGES): '--language' takes either. */
const LANGUAGES: Record<string, string> = {
  en: 'english', zh: 'chinese', de: 'german', es: 'spanish', ru: 'russian', ko: 'korean', fr: 'french', ja: 'japanese', pt: 'portuguese',
  tr: 'turkish', pl: 'polish', ca: 'catalan', nl: 'dutch', ar: 'arabic', sv: 'swedish', it: 'italian', id: 'indonesian', hi: 'hindi',
  fi: 'finnish', vi: 'vietnamese', he: 'hebrew', uk: 'ukrainian', el: 'greek', ms: 'malay', cs: 'czech', ro: 'romanian', da: 'danish',
  hu: 'hungarian', ta: 'tamil', no: 'norwegian', th: 'thai', ur: 'urdu', hr: 'croatian', bg: 'bulgarian', lt: 'lithuanian', la: 'latin',
  mi: 'maori', ml: 'malayalam', cy: 'welsh', sk: 'slovak', te: 'telugu', fa: 'persian', lv: 'latvian', bn: 'bengali', sr: 'serbian',
  az: 'azerbaijani', sl: 'slovenian', kn: 'kannada', et: 'estonian', mk: 'macedonian', br: 'breton', eu: 'basque', is: 'icelandic',
  hy: 'armenian', ne: 'nepali', mn: 'mongolian', bs: 'bosnian', kk: 'kazakh', sq: 'albanian', sw: 'swahili', gl: 'galician', mr: 'marathi',
  pa: 'punjabi', si: 'sinhala', km: 'khmer', sn: 'shona', yo: 'yoruba', so: 'somali', af: 'afrikaans', oc: 'occitan', ka: 'georgian',
  be: 'belarusian', tg: 'tajik', sd: 'sindhi', gu: 'gujarati', am: 'amharic', yi: 'yiddish', lo: 'lao', uz: 'uzbek', fo: 'faroese',
  ht: 'haitian creole', ps: 'pashto', tk: 'turkmen', nn: 'nynorsk', mt: 'maltese', sa: 'sanskrit', lb: 'luxembourgish', my: 'myanmar',
  bo: 'tibetan', tl: 'tagalog', mg: 'malagasy', as: 'assamese', tt: 'tatar', haw: 'hawaiian', ln: 'lingala', ha: 'hausa', ba: 'bashkir',
  jw: 'javanese', su: 'sundanese', yue: 'cantonese',
};

export interface WhisperPromptOptions {
  /** 'en', 'english' or '<|en|>' (transformers' language argument); absent: detected when the model has lang_to_id. */
  language?: string;
  /** 'transcribe' or 'translate' (to English). */
  task?: string;
}

/** A language as '<|xx|>' -> its token id, as transformers' language_to_id; errors list what the model knows. */
export function languageTokenId(language: string, d: GenerationDefaults): number {
  const langToId = d.langToId;
  if (!langToId || !Object.keys(langToId).length) throw new Error(`generate: language '${language}' was given, but the model's generation_config.json has no lang_to_id`);
  const l = language.toLowerCase();
  const byName = Object.entries(LANGUAGES).find(([, name]) => name === l)?.[0];
  const token = Object.hasOwn(langToId, l) ? l : byName ? `<|${byName}|>` : Object.hasOwn(LANGUAGES, l) ? `<|${l}|>` : null;
  if (token === null || !Object.hasOwn(langToId, token)) {
    const known = Object.keys(langToId).map((t) => t.replace(/^<\|(.*)\|>$/, '$1'));
    throw new Error(`generate: unsupported language '${language}'; this model knows ${known.slice(0, 12).join(', ')}${known.length > 12 ? `, ... (${known.length} in all)` : ''}`);
  }
  return langToId[token]!;
}

/**
 * transformers' WhisperForConditionalGeneration._retrieve_init_tokens for one sequence: [decoder_start] + the
 * generation config's forced_decoder_ids (positions 1, 2, ...) unless a language or task is given, then the
 * language (given, or `null` = to be detected), the task (replacing a forced one; 'transcribe' when only a language
 * is given), and <|notimestamps|> (timestamps are not supported here). `detectAt` is the position of a language
 * still to be detected (its token is null there), or -1.
 */
export function whisperInitTokens(d: GenerationDefaults, start: number, o: WhisperPromptOptions): { tokens: (number | null)[]; detectAt: number } {
  const { language, task } = o;
  if ((language !== undefined || task !== undefined) && d.isMultilingual === false) {
    throw new Error(`generate: this is an English-only model (is_multilingual is false in generation_config.json); it takes no language or task`);
  }
  const forced = language === undefined && task === undefined ? [...(d.forcedDecoderIds ?? [])] : [];
  const tokens: (number | null)[] = [start];
  if (forced.length && forced[0]![0] === 1) {
    for (let i = 1; forced.length && forced[0]![0] === i; i++) tokens.push(forced.shift()![1]);
    if (forced.length) throw new Error(`generate: forced_decoder_ids ${JSON.stringify(d.forcedDecoderIds)} must give every position from 1 on, without gaps`);
  } else if (forced.length) {
    throw new Error(`generate: forced_decoder_ids ${JSON.stringify(d.forcedDecoderIds)} must start at position 1 (Whisper's prompt pattern)`);
  }
  const languageUndefined = tokens.length <= 1 || tokens[1] === null;
  let lang: number | null | undefined;
  if (language !== undefined) lang = languageTokenId(language, d);
  else if (d.langToId && Object.keys(d.langToId).length && languageUndefined) lang = null; // detect
  if (lang !== undefined) {
    if (tokens.length > 1) tokens[1] = lang;
    else tokens.push(lang);
  }
  const taskIds = Object.values(d.taskToId ?? {});
  if (task !== undefined) {
    if (task !== 'transcribe' && task !== 'translate') throw new Error(`generate: task must be 'transcribe' or 'translate', got '${task}'`);
    const id = d.taskToId?.[task];
    if (id === undefined) throw new Error(`generate: task '${task}' was given, but the model's generation_config.json has no task_to_id for it`);
    const at = tokens.findIndex((t) => t !== null && taskIds.includes(t));
    if (at >= 0) tokens[at] = id;
    else tokens.push(id);
  } else if (language !== undefined && d.taskToId?.['transcribe'] !== undefined && !tokens.some((t) => t !== null && taskIds.includes(t))) {
    tokens.push(d.taskToId['transcribe']);
  }
  const noTs = d.noTimestampsTokenId;
  if (noTs !== undefined && tokens[tokens.length - 1] !== noTs) tokens.push(noTs);
  const detectAt = lang === null ? 1 : -1;
  // transformers drops tokens that stay None; a language still to be detected keeps its place.
  const kept = tokens.filter((t, i) => t !== null || i === detectAt);
  return { tokens: kept, detectAt };
}
