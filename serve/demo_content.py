"""The demo's texts: example statements with their guideline labels, and the label guide.

Every example was written for this project (none is taken from news) and is labelled by the
project's guideline (shared LABELS.md): two per stance label, then the hard cases its
tie-breaks settle. The guideline label is shown beside each example so a researcher can
compare it with what the model says.
"""

from __future__ import annotations

# (statement, guideline label and the reason)
EXAMPLES: list[tuple[str, str]] = [
    ("We welcome the invitation and are ready to resume talks in Vienna next week, without "
     "preconditions.",
     "pro_negotiation · positive: welcomes and offers talks"),
    ("The UN envoy urged both delegations to extend the truce and return to the table.",
     "pro_negotiation · neutral: a third party urging talks"),
    ("Their artillery deliberately shelled the maternity hospital in Dolinsk, killing "
     "eleven people.",
     "accusatory · negative: harm attributed to a named party"),
    ("We condemn the militia's attack on the aid convoy in the strongest terms.",
     "accusatory · negative: condemning an act"),
    ("The foreign ministers will meet on Thursday in a closed session, the ministry said.",
     "neutral · neutral: procedure"),
    ("A drone hit a fuel depot near the border late on Sunday, officials said.",
     "neutral · negative: violence with no perpetrator named"),
    ("We are still ready to negotiate, even though the other side has broken every "
     "promise so far.",
     "hard case → pro_negotiation · negative: offer and blame, the offer is the point"),
    ("It was their delegation that walked out of the talks, not ours.",
     "hard case → accusatory · negative: talks mentioned, but the blame is the point"),
    ("There is nothing to discuss with people who bomb our schools.",
     "hard case → accusatory · negative: rejects talks and blames"),
    ("There is nothing to discuss at this stage, the spokesman said.",
     "hard case → neutral · neutral: rejects talks without blaming anyone"),
    ("The government declared a unilateral ceasefire from midnight on Friday.",
     "hard case → pro_negotiation · neutral: a reported peace step counts as the act"),
    ("The army said it had repelled a dozen enemy assaults on the district overnight.",
     "hard case → accusatory · negative: reported harm with a named actor"),
    ("We will defend every village of our country, whatever it costs.",
     "hard case → neutral · neutral: resolve, no blame and no offer"),
]

LABEL_GUIDE = """\
**Stance**: what the speaker of the text *does* in it (for a quote, judge the quoted claim).

| label | the speaker ... |
|---|---|
| `pro_negotiation` | offers, welcomes, calls for or agrees to talks, mediation, a ceasefire, \
a peace plan, de-escalation or compromise; also conditional offers, third parties urging \
talks, reported peace steps ("a ceasefire was declared") |
| `accusatory` | blames, accuses, condemns or attributes wrongdoing or hostile intent to an \
identifiable party, reported or not ("rebels shot down a plane") |
| `neutral` | does neither: events with no perpetrator named, procedure, resolve, threats \
without blame, questions, thanks |

Tie-breaks: a statement that both offers talks and blames gets the label of the act it is \
*for*; rejecting talks is `accusatory` if it blames, else `neutral`.

**Sentiment**: the overall tone as a reader feels it, not anyone's politics: `negative` \
(violence, blame, condolences), `neutral` (plain calls for talks, procedure, thanks), \
`positive` (hope, welcome, praise). The score is P(positive) − P(negative), from −1 to 1.
"""

INTRO = """\
# detente

Stance and sentiment of political statements from war and diplomacy news. Type a statement, \
see the stance with its three probabilities, the sentiment on a −1..1 scale, and the words \
that pushed the prediction. Runs entirely on this machine: nothing is sent anywhere."""
