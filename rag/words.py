"""Words that carry no topic: dropped from BM25 queries, rescoring and the support check."""

from __future__ import annotations

STOPWORDS = frozenset(
    "a an and are as at be been by did do does for from had has have how i in is it its of on or that the their "
    "this to was were what when where which who whom whose why will with you your about into than then there "
    "these those they we he she his her them our can could would should may might also not no yes".split()
)
