// The Spam Assassin corpus: the counts its README publishes, known subjects in several charsets, and a sample of
// subjects and plain bodies checked against Python's email package (test/data/spam-assassin-reference.json).

import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, test } from 'vitest';
import { loadSpamAssassin, SPAM_ASSASSIN_GROUPS, type SpamEmail } from './spam.js';

interface Reference {
  messages: { file: string; subject: string; bodyLength: number; bodyStart: string }[];
}
const ref = JSON.parse(readFileSync(new URL('../../test/data/spam-assassin-reference.json', import.meta.url), 'utf8')) as Reference;

// Parsed once for the whole file: reading and parsing 6046 messages takes a few seconds.
let corpus: SpamEmail[];
beforeAll(async () => {
  corpus = await loadSpamAssassin();
});

const find = (group: string, id: string): SpamEmail => {
  const m = corpus.find((e) => e.group === group && e.id === id);
  if (!m) throw new Error(`no message ${group}/${id}`);
  return m;
};

describe('Spam Assassin corpus', () => {
  test('the published counts: 6046 messages, 2500 + 1400 + 250 ham and 500 + 1396 spam', () => {
    expect(corpus.length).toBe(6046);
    const counts: Record<string, number> = {};
    for (const e of corpus) counts[e.group] = (counts[e.group] ?? 0) + 1;
    expect(counts).toEqual({ 'easy-ham-1': 2500, 'easy-ham-2': 1400, 'hard-ham-1': 250, 'spam-1': 500, 'spam-2': 1396 });
    expect(counts).toEqual(SPAM_ASSASSIN_GROUPS);
    expect(corpus.filter((e) => e.label === 'spam').length).toBe(1896);
    expect(corpus.filter((e) => e.label === 'ham').length).toBe(4150);
    expect(corpus.every((e) => e.label === (e.group.startsWith('spam') ? 'spam' : 'ham'))).toBe(true);
  });

  test('known subjects, plain and encoded (Q latin1, big5, gb2312, iso-2022-jp, raw euc-kr)', () => {
    expect(find('easy-ham-1', '00001').subject).toBe('Re: New Sequences Window');
    expect(find('spam-1', '00001').subject).toBe('Life Insurance - Why Pay More?');
    expect(find('easy-ham-1', '02434').subject).toBe('Re: RE: [zzzzteana] Sitting Bull über alles [Long]');
    expect(find('spam-2', '00410').subject).toBe('Fw: CD Nua do dhamhsaí Chéilí');
    // =99 in an iso-8859-1 word: windows-1252's trade mark sign, as browsers and mail readers show it.
    expect(find('hard-ham-1', '00149').subject).toBe('Matrox Parhelia™ now available');
    expect(find('spam-1', '00252').subject).toBe('不看會後悔');
    expect(find('spam-1', '00397').subject).toBe('50元获得一亿五千万EMAIL地址的机会');
    expect(find('hard-ham-1', '00039').subject).toBe('日本語の件名（サブジェクト）\u3000スパムメールではありません！');
    // An unencoded euc-kr subject, decoded with the charset the body declares.
    expect(find('spam-1', '00035').subject).toBe('[광고] 요즘 뜨는 직종 Best 5 & 자격증 따기 열풍');
  });

  test('text is subject, a line break, then body; an HTML-only spam reads as text', () => {
    const m = find('easy-ham-1', '00001');
    expect(m.text).toBe(`${m.subject}\n${m.body}`);
    expect(m.body.startsWith('Date:        Wed, 21 Aug 2002 10:54:46 -0500')).toBe(true);
    const html = find('spam-1', '00001');
    expect(html.body).not.toMatch(/<[a-z]/i);
    expect(html.body).toMatch(/Save up to 70% on Life Insurance\./);
  });

  test(`a sample of ${ref.messages.length} messages matches Python's email package (subject and text/plain body)`, () => {
    expect(ref.messages.length).toBeGreaterThan(100);
    for (const r of ref.messages) {
      const [group, name] = r.file.split('/') as [string, string];
      const m = find(group, name.split('.')[0]!);
      expect(m.subject, r.file).toBe(r.subject);
      const body = m.body.replace(/\s+/g, ' ').trim();
      expect(body.slice(0, 600), r.file).toBe(r.bodyStart);
      expect(body.length, r.file).toBe(r.bodyLength);
    }
  });

  test('groups can be chosen; unknown groups and a missing corpus are clear errors', async () => {
    const spam1 = await loadSpamAssassin({ groups: ['spam-1'] });
    expect(spam1.length).toBe(500);
    expect(spam1.every((e) => e.group === 'spam-1' && e.label === 'spam')).toBe(true);
    await expect(loadSpamAssassin({ groups: ['spam-3' as 'spam-1'] })).rejects.toThrow(/unknown group 'spam-3'/);
    await expect(loadSpamAssassin({ dir: '/nonexistent/spam' })).rejects.toThrow(/cannot read \/nonexistent\/spam\/data\/file_list\.json.*npm install --save-dev @stdlib\/datasets-spam-assassin@0\.2\.3/);
  });
});
