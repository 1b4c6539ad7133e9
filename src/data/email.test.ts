// The e-mail reader on hand-made messages: each MIME feature with the text a mail reader shows for it.

import { describe, expect, test } from 'vitest';
import { decodeBase64, decodeHeaderValue, decodeQuotedPrintable, parseEmail } from './email.js';
import { decodeEntities, htmlToText } from './html.js';

/** A message from lines joined with CRLF, as on the wire. */
const msg = (...lines: string[]): string => lines.join('\r\n');
/** Bytes of a latin1 string (each char one byte): for 8-bit bodies. */
const latin1 = (s: string): Uint8Array => Uint8Array.from(s, (c) => c.charCodeAt(0));

describe('headers', () => {
  test('folded headers are unfolded and encoded-words decoded (B and Q, whitespace between words dropped)', () => {
    const m = parseEmail(msg(
      'From: a@example.com',
      'Subject: =?utf-8?B?SGVsbG8gV8O2cmxk?=',
      ' =?utf-8?Q?_caf=C3=A9?= and',
      '\tmore',
      '',
      'body',
    ));
    expect(m.subject).toBe('Hello Wörld café and more');
    expect(m.body).toBe('body');
    expect(m.headers.map((h) => h.name)).toEqual(['From', 'Subject']);
  });

  test('a character split between two encoded-words survives; latin1 Q words; raw 8-bit headers', () => {
    expect(decodeHeaderValue('=?utf-8?Q?=E2=82?= =?utf-8?Q?=AC?=')).toBe('€');
    expect(decodeHeaderValue('=?ISO-8859-1?Q?Gr=FC=DFe_aus_K=F6ln?=')).toBe('Grüße aus Köln');
    expect(decodeHeaderValue('Re: =?iso-8859-1?q?na=EFve?= idea')).toBe('Re: naïve idea');
    expect(decodeHeaderValue('=?utf-8*en?B?4pyT?=')).toBe('✓'); // RFC 2231 language suffix
    // Unencoded 8-bit text: utf-8 when valid, else windows-1252.
    expect(parseEmail(latin1('Subject: Caf\xc3\xa9\n\nx')).subject).toBe('Café');
    expect(parseEmail(latin1('Subject: Caf\xe9 \x93ok\x94\n\nx')).subject).toBe('Café “ok”');
  });

  test('an mbox envelope line, CRLF line ends and a missing subject', () => {
    const m = parseEmail(msg('From someone@example.com  Thu Aug 22 12:36:23 2002', 'To: b@example.com', '', 'line one', 'line two', ''));
    expect(m.subject).toBe('');
    expect(m.body).toBe('line one\nline two');
    expect(m.headers).toEqual([{ name: 'To', value: 'b@example.com' }]);
  });
});

describe('bodies', () => {
  test('quoted-printable: escapes, soft line breaks, =3D and a utf-8 charset', () => {
    const m = parseEmail(msg(
      'Content-Type: text/plain; charset="utf-8"',
      'Content-Transfer-Encoding: quoted-printable',
      '',
      'caf=C3=A9 soft=',
      'break 1 + 1 =3D 2   ',
      'next line',
    ));
    expect(m.body).toBe('café softbreak 1 + 1 = 2\nnext line');
    expect(decodeQuotedPrintable('a=\r\nb=4')).toBe('ab=4'); // a malformed escape stays literal
  });

  test('base64 in latin1 (iso-8859-1)', () => {
    const b64 = Buffer.from('Café crème brûlée', 'latin1').toString('base64');
    const m = parseEmail(msg('Content-Type: text/plain; charset=iso-8859-1', 'Content-Transfer-Encoding: BASE64', '', b64.slice(0, 10), b64.slice(10)));
    expect(m.body).toBe('Café crème brûlée');
    expect(decodeBase64('aGk=\nignored')).toBe('hi');
  });

  test('8-bit windows-1252 and a charset label no decoder knows (guessed: utf-8 if valid)', () => {
    expect(parseEmail(latin1('Content-Type: text/plain; charset=windows-1252\n\n\x93quoted\x94 \x80 5')).body).toBe('“quoted” € 5');
    expect(parseEmail(latin1('Content-Type: text/plain; charset=default\n\nna\xc3\xafve')).body).toBe('naïve');
    expect(parseEmail(latin1('Content-Type: text/plain; charset=utf-8\n\nmislabelled caf\xe9')).body).toBe('mislabelled café');
  });

  test('multipart/alternative prefers text/plain; without it, the HTML is converted', () => {
    const alt = (plain: boolean): string => msg(
      'Content-Type: multipart/alternative; boundary="XX"',
      '',
      'preamble is not shown',
      '--XX',
      ...(plain ? ['Content-Type: text/plain; charset=us-ascii', '', 'Plain version.', '--XX'] : []),
      'Content-Type: text/html',
      '',
      '<html><body><p>HTML <b>version</b>.</p></body></html>',
      '--XX--',
      'epilogue is not shown',
    );
    expect(parseEmail(alt(true)).body).toBe('Plain version.');
    expect(parseEmail(alt(false)).body).toBe('HTML version.');
  });

  test('nested multipart: mixed > (alternative > plain, html), an inline footer and a base64 attachment', () => {
    const m = parseEmail(msg(
      'Subject: nested',
      'MIME-Version: 1.0',
      'Content-Type: multipart/mixed;',
      '\tboundary="outer"',
      '',
      '--outer',
      'Content-Type: multipart/alternative; boundary=inner',
      '',
      '--inner',
      'Content-Type: text/plain; charset=utf-8',
      'Content-Transfer-Encoding: 8bit',
      '',
      'Hi there,',
      'see attached.',
      '--inner',
      'Content-Type: text/html; charset=utf-8',
      '',
      '<p>Hi there,<br>see attached.</p>',
      '--inner--',
      '--outer',
      'Content-Type: application/pdf; name="a.pdf"',
      'Content-Disposition: attachment; filename="a.pdf"',
      'Content-Transfer-Encoding: base64',
      '',
      Buffer.from('%PDF-1.4 not text').toString('base64'),
      '--outer',
      'Content-Type: text/plain',
      'Content-Disposition: inline',
      '',
      '-- footer',
      '--outer--',
    ));
    expect(m.subject).toBe('nested');
    expect(m.body).toBe('Hi there,\nsee attached.\n\n-- footer');
  });

  test('an attached message (message/rfc822) contributes its body; images contribute nothing', () => {
    const m = parseEmail(msg(
      'Content-Type: multipart/mixed; boundary=b',
      '',
      '--b',
      '',
      'Forwarding this:',
      '--b',
      'Content-Type: image/gif',
      'Content-Transfer-Encoding: base64',
      '',
      'R0lGODlhAQABAAAAACw=',
      '--b',
      'Content-Type: message/rfc822',
      '',
      'Subject: inner',
      'Content-Type: text/plain',
      '',
      'Inner body.',
      '--b--',
    ));
    expect(m.body).toBe('Forwarding this:\n\nInner body.');
  });

  test('a boundary that never occurs leaves the body as plain text', () => {
    expect(parseEmail('Content-Type: multipart/mixed; boundary=nope\n\njust text\n').body).toBe('just text');
  });
});

describe('HTML to text', () => {
  test('entities: named, numeric, hex, legacy without semicolon, C1 numbers as windows-1252, unknown names kept', () => {
    expect(decodeEntities('Tom &amp; Jerry &copy; 2002 &#8364;5 &#x41; &eacute;t&eacute; &hellip; &nbsp')).toBe('Tom & Jerry © 2002 €5 A été … \u00a0');
    expect(decodeEntities('&#150; &#153; &bogus; &hellip')).toBe('– ™ &bogus; &hellip');
  });

  test('scripts, styles, comments and the head are dropped; blocks and <br> break lines; cells are spaced', () => {
    const html = [
      '<!DOCTYPE html><html><head><title>Subject again</title><style>p { color: red }</style></head>',
      '<body><!-- hidden <p>comment</p> -->',
      '<script type="text/javascript">document.write("<p>no</p>")</script>',
      '<h1>Big   News</h1><p>First&nbsp;paragraph,',
      '  still first.</p><p>Second<br/>line two</p>',
      '<table><tr><td>a</td><td>b</td></tr><tr><td>c</td><td>d</td></tr></table>',
      '<a href="x" title="a > b">link</a> &lt;not a tag&gt;',
      '</body></html>',
    ].join('\n');
    expect(htmlToText(html)).toBe('Big News\n\nFirst paragraph, still first.\n\nSecond\nline two\n\na b\nc d\nlink <not a tag>');
  });

  test('HTML bodies are converted after the transfer encoding and charset', () => {
    const m = parseEmail(msg(
      'Content-Type: text/html; charset="iso-8859-1"',
      'Content-Transfer-Encoding: quoted-printable',
      '',
      '<html><body bgcolor=3D"white"><p>Gr=FC=DFe &amp; <i>bient=F4t</i>!</p>=',
      '<p>&euro;10</p></body></html>',
    ));
    expect(m.body).toBe('Grüße & bientôt!\n\n€10');
  });
});
