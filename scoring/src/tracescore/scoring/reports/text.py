"""Making arbitrary agent and evaluator text safe to write into a report."""

import re

# Lone surrogates (from output decoded with errors="surrogateescape") cannot be
# encoded as UTF-8, and strict JSON readers reject them even as \u escapes.
_SURROGATES = re.compile("[\ud800-\udfff]")
# Characters XML 1.0 forbids even as references; ElementTree would write them raw and
# every JUnit reader would reject the whole file.
_INVALID_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
# C0 controls (but tab and newline) and DEL: invisible or terminal escapes in Markdown.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f]")


def unicode_safe(text: str) -> str:
    return _SURROGATES.sub("", text)


def xml_safe(text: str) -> str:
    return _INVALID_XML.sub("", text)


def printable(text: str) -> str:
    return _CONTROL.sub("", unicode_safe(text))
