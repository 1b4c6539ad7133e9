// HTML to plain text for e-mail bodies: scripts, styles and the head dropped, block elements as line breaks, entities decoded.

import { WINDOWS_1252_C1 } from './charset.js';

/** Named entities: the ISO-8859-1 set (160-255, in code point order), the XML five and the common typographic ones. */
const LATIN1_NAMES = (
  'nbsp iexcl cent pound curren yen brvbar sect uml copy ordf laquo not shy reg macr deg plusmn sup2 sup3 acute micro ' +
  'para middot cedil sup1 ordm raquo frac14 frac12 frac34 iquest Agrave Aacute Acirc Atilde Auml Aring AElig Ccedil ' +
  'Egrave Eacute Ecirc Euml Igrave Iacute Icirc Iuml ETH Ntilde Ograve Oacute Ocirc Otilde Ouml times Oslash Ugrave ' +
  'Uacute Ucirc Uuml Yacute THORN szlig agrave aacute acirc atilde auml aring aelig ccedil egrave eacute ecirc euml ' +
  'igrave iacute icirc iuml eth ntilde ograve oacute ocirc otilde ouml divide oslash ugrave uacute ucirc uuml yacute thorn yuml'
).split(' ');

const ENTITIES: Record<string, number> = {
  ...Object.fromEntries(LATIN1_NAMES.map((n, i) => [n, 160 + i])),
  amp: 38, lt: 60, gt: 62, quot: 34, apos: 39,
  OElig: 338, oelig: 339, Scaron: 352, scaron: 353, Yuml: 376, fnof: 402, circ: 710, tilde: 732,
  ensp: 8194, emsp: 8195, thinsp: 8201, zwnj: 8204, zwj: 8205, lrm: 8206, rlm: 8207, ndash: 8211, mdash: 8212,
  lsquo: 8216, rsquo: 8217, sbquo: 8218, ldquo: 8220, rdquo: 8221, bdquo: 8222, dagger: 8224, Dagger: 8225,
  bull: 8226, hellip: 8230, permil: 8240, prime: 8242, Prime: 8243, lsaquo: 8249, rsaquo: 8250, euro: 8364,
  trade: 8482, larr: 8592, uarr: 8593, rarr: 8594, darr: 8595, harr: 8596, hearts: 9829, diams: 9830,
};

/** Names that browsers also accept without the semicolon (the legacy set: Latin-1 and the XML ones but apos). */
const LEGACY = new Set([...LATIN1_NAMES, 'amp', 'lt', 'gt', 'quot']);

function fromCodePoint(cp: number): string {
  if (cp >= 128 && cp <= 159) return String.fromCodePoint(WINDOWS_1252_C1[cp - 128]!);
  if (cp === 0 || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return '\ufffd';
  return String.fromCodePoint(cp);
}

/** Decodes character references: &name; (and the legacy names without ';'), &#123; and &#x7b;. Unknown names stay as written. */
export function decodeEntities(text: string): string {
  return text.replace(/&(?:#(\d{1,7});?|#[xX]([0-9a-fA-F]{1,6});?|([a-zA-Z][a-zA-Z0-9]{1,31})(;?))/g, (whole, dec?: string, hex?: string, name?: string, semi?: string) => {
    if (dec !== undefined) return fromCodePoint(Number(dec));
    if (hex !== undefined) return fromCodePoint(parseInt(hex, 16));
    const cp = ENTITIES[name!];
    if (cp !== undefined && (semi === ';' || LEGACY.has(name!))) return String.fromCodePoint(cp);
    return whole;
  });
}

const BLOCK = 'address|article|aside|blockquote|center|dd|div|dl|dt|fieldset|figcaption|figure|footer|form|h[1-6]|header|hr|li|main|nav|ol|pre|section|table|tbody|thead|tfoot|tr|ul';
// A tag, with quoted attribute values that may contain '>'.
const TAG = /<\/?[a-zA-Z][^\s/>]*(?:"[^"]*"|'[^']*'|[^'">])*>/g;
const BLOCK_TAG = new RegExp(`<\\/?(?:${BLOCK})\\b(?:"[^"]*"|'[^']*'|[^'">])*>`, 'gi');
const CELL_TAG = /<\/?t[dh]\b(?:"[^"]*"|'[^']*'|[^'">])*>/gi;
const P_TAG = /<\/?p\b(?:"[^"]*"|'[^']*'|[^'">])*>/gi;
const BR_TAG = /<br\b(?:"[^"]*"|'[^']*'|[^'">])*>/gi;
// Block boundaries are marked first and collapsed later: adjacent blocks make one line break, as in a browser, and a
// paragraph among them makes a blank line (its margin). Control characters cannot occur in HTML text.
const BLOCK_MARK = '\u0001', PARA_MARK = '\u0002';

/**
 * The text a reader sees in an HTML document, roughly as a browser's innerText: source whitespace collapses, block
 * elements and <br> start new lines (paragraphs leave a blank line), table cells are separated by spaces, scripts,
 * styles, comments and the head (its <title> repeats the subject) are dropped, entities are decoded and non-breaking
 * spaces become spaces. At most one blank line is kept anywhere.
 */
export function htmlToText(html: string): string {
  const text = html
    .replace(/[\u0000-\u0008\u000b\u000e-\u001f]/g, '') // control characters: garbage in HTML, and the markers below
    .replace(/<!--[\s\S]*?(?:-->|$)/g, ' ')
    .replace(/<!\[CDATA\[[\s\S]*?\]\]>/g, ' ')
    // An unclosed script or style hides the rest of the page in a browser too; an unclosed head hides nothing.
    .replace(/<(script|style)\b[\s\S]*?(?:<\/\1\s*>|$)/gi, ' ')
    .replace(/<(head|title|xml)\b[\s\S]*?<\/\1\s*>/gi, ' ')
    .replace(/<[!?][^>]*>/g, ' ')
    .replace(/[ \t\n\r\f]+/g, ' ')
    .replace(BR_TAG, '\n')
    .replace(P_TAG, PARA_MARK)
    .replace(BLOCK_TAG, BLOCK_MARK)
    .replace(CELL_TAG, ' ')
    .replace(TAG, '')
    .replace(/[ \u0001\u0002]*[\u0001\u0002][ \u0001\u0002]*/g, (run) => (run.includes(PARA_MARK) ? '\n\n' : '\n'));
  return decodeEntities(text)
    .replace(/\u00a0/g, ' ')
    .split('\n')
    .map((line) => line.replace(/ {2,}/g, ' ').trim())
    .join('\n')
    .replace(/\n{3,}/g, '\n\n')
    .trim();
}
