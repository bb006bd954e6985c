"""Texts of the embedded mini corpus: user sentences, replies, CoT and T2T pairs.

Every user sentence carries the emotion it is spoken with and a short topic phrase that
the templated reply reuses. Replies depend on the user's emotion (-> reply emotion) and
age group (an empathetic closing for children and elderly speakers), so a model has to
use paralinguistic cues to produce the right reply. All text is English: espeak-ng has
no usable Mandarin voice (offline_assets.md 2.4).
"""

from __future__ import annotations

import itertools
import random
from typing import Dict, List, Tuple

# (sentence, topic) per user emotion; 12 each. Sentences never repeat across emotions.
SENTENCES: Dict[str, List[Tuple[str, str]]] = {
    "<HAPPY>": [
        ("I just passed my driving test on the first try.", "your driving test"),
        ("My sister had a healthy baby girl this morning.", "your new niece"),
        ("We won the football match last night.", "the football match"),
        ("I finally finished painting the whole house.", "the house painting"),
        ("My best friend is coming to visit tomorrow.", "your friend's visit"),
        ("I got the job I applied for last month.", "your new job"),
        ("The garden is full of flowers this spring.", "your garden"),
        ("Our team finished the project a week early.", "the project"),
        ("I baked my first loaf of bread today.", "your bread"),
        ("My grandson called me to say he loves me.", "your grandson's call"),
        ("I found the ring I thought I had lost.", "your ring"),
        ("The sun is shining and I feel great.", "the sunny day"),
    ],
    "<SAD>": [
        ("My old dog passed away this morning.", "your dog"),
        ("I failed the exam I studied so hard for.", "the exam"),
        ("My best friend is moving to another country.", "your friend moving away"),
        ("Nobody came to my birthday party.", "your birthday party"),
        ("I lost my job at the factory today.", "your job"),
        ("My grandmother is very ill in hospital.", "your grandmother"),
        ("I broke the vase my mother gave me.", "the vase"),
        ("It has been raining for a week and I feel lonely.", "feeling lonely"),
        ("My bicycle was stolen from the school.", "your bicycle"),
        ("I miss my family who live far away.", "missing your family"),
        ("The doctor said my knee will not get better.", "your knee"),
        ("My cat has been missing for three days.", "your cat"),
    ],
    "<ANGRY>": [
        ("The bus was late again and I missed my meeting.", "the late bus"),
        ("Someone scratched my new car in the parking lot.", "your car"),
        ("The shop sold me a broken phone.", "the broken phone"),
        ("My neighbour plays loud music every night.", "the loud music"),
        ("They cancelled my flight without telling me.", "your flight"),
        ("The bill is twice as much as they promised.", "the bill"),
        ("My brother took my bike without asking.", "your bike"),
        ("The restaurant served me cold soup.", "the cold soup"),
        ("The internet has been down all day.", "the internet"),
        ("Somebody ate my lunch from the fridge.", "your lunch"),
        ("The delivery came a week late and damaged.", "the delivery"),
        ("They charged me twice for the same ticket.", "the ticket"),
    ],
    "<NEUTRAL>": [
        ("I need to buy some milk and bread.", "your shopping"),
        ("The meeting starts at ten tomorrow.", "the meeting"),
        ("I am reading a book about old ships.", "your book"),
        ("Please tell me how to boil an egg.", "boiling an egg"),
        ("I usually walk to work in the morning.", "your walk to work"),
        ("The library closes at six on Fridays.", "the library"),
        ("I want to plant some tomatoes this year.", "your tomatoes"),
        ("My train leaves from platform four.", "your train"),
        ("I am thinking about learning to swim.", "learning to swim"),
        ("The weather will be cloudy this weekend.", "the weather"),
        ("I have to clean the kitchen later.", "the kitchen"),
        ("What is a good name for a goldfish.", "a name for a goldfish"),
    ],
}

# User emotion -> reply emotion (tag-think reply set, docs/labels.md#tag-think) and reply opening.
REPLY_RULES: Dict[str, Tuple[str, str]] = {
    "<HAPPY>": ("<开心>", "That is wonderful news about {topic}! I am so happy for you."),
    "<SAD>": ("<安慰鼓励>", "I am so sorry about {topic}. You are not alone, it will get better."),
    "<ANGRY>": ("<抱歉>", "I understand why {topic} upsets you. Let us find a way to fix it."),
    "<NEUTRAL>": ("<中立>", "Thanks for telling me about {topic}. Here is a simple plan."),
}
AGE_CLOSING: Dict[str, str] = {
    "<CHILD>": " You are doing great, little friend.",
    "<ADULT>": "",
    "<OLD>": " Please take good care of yourself.",
}
AGE_WORDS = {"<CHILD>": "a child", "<ADULT>": "an adult", "<OLD>": "an elderly person"}
GENDER_WORDS = {"<MALE>": "male", "<FEMALE>": "female"}
EMOTION_WORDS = {
    "<HAPPY>": "happy and excited",
    "<SAD>": "sad and low",
    "<ANGRY>": "angry and tense",
    "<NEUTRAL>": "calm",
}
EVENT_WORDS = {
    "<COUGH>": ", and I hear a cough",
    "<LAUGHTER>": ", and I hear laughter",
    "<SIGH>": ", and I hear a sigh",
    "<OTHER>": "",
}
REPLY_STYLE = {
    "<开心>": "a cheerful",
    "<安慰鼓励>": "a comforting",
    "<抱歉>": "an apologetic, helpful",
    "<中立>": "a neutral, helpful",
}


def make_reply(topic: str, emotion: str, age: str) -> Tuple[str, str]:
    """Return ``(reply_emotion, reply_text)`` for a user turn."""
    reply_emotion, opening = REPLY_RULES[emotion]
    return reply_emotion, opening.format(topic=topic) + AGE_CLOSING[age]


def make_language_think(
    text: str, age: str, gender: str, emotion: str, event: str, reply_emotion: str
) -> str:
    """A natural-language CoT (docs/labels.md#language-think) describing what was said and how."""
    return (
        f'The user says "{text}" The voice sounds like {AGE_WORDS[age]}, '
        f"{GENDER_WORDS[gender]}, and the tone is {EMOTION_WORDS[emotion]}"
        f"{EVENT_WORDS[event]}. I should answer in {REPLY_STYLE[reply_emotion]} way."
    )


NUMBER_WORDS = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen "
    "fourteen fifteen sixteen seventeen eighteen"
).split()


def arithmetic_pairs() -> List[Tuple[str, str]]:
    """Text-only question/answer pairs for T2T (all distinct)."""
    pairs = []
    for a in range(1, 10):
        for b in range(1, 10):
            if a <= b:
                question = f"What is {NUMBER_WORDS[a]} plus {NUMBER_WORDS[b]}?"
                answer = f"{NUMBER_WORDS[a].capitalize()} plus {NUMBER_WORDS[b]} is {NUMBER_WORDS[a + b]}."
                pairs.append((question, answer))
    return pairs


# Read speech for ASR (and the labels): short everyday sentences from a small grammar, so that
# a model can learn to transcribe words in new combinations rather than recall the 32 training
# sentences above. Every slot value is a plain phrase; a sentence is one choice per slot.
READ_TEMPLATES: Tuple[Tuple[str, Tuple[Tuple[str, ...], ...]], ...] = (
    (
        "{} {} {}.",
        (
            ("My brother", "My sister", "Our neighbour", "The teacher", "My friend",
             "The doctor", "My father", "My mother", "The old man", "A little girl",
             "The driver", "My uncle", "Our son", "The farmer"),
            ("bought a new bicycle", "found a small kitten", "painted the front door",
             "lost the red umbrella", "cooked a big dinner", "sold the old piano",
             "fixed the broken window", "wrote a long letter", "washed the blue shirt",
             "visited the museum", "planted an apple tree", "carried the heavy box",
             "cleaned the garage", "caught a large fish", "opened a flower shop",
             "climbed the tall hill", "missed the last train", "baked a chocolate cake",
             "borrowed my green jacket", "watched a funny film"),
            ("yesterday", "this morning", "last week", "on Sunday", "after lunch",
             "before the storm", "in the evening", "at noon", "two days ago", "last summer"),
        ),
    ),
    (
        "Can you {} {}?",
        (
            ("remind me to call the dentist", "help me find my glasses",
             "tell me the way to the station", "show me how to send a photo",
             "check the price of a ticket", "read the news to me", "play some quiet music",
             "turn on the kitchen light", "set an alarm for me", "order a taxi for me",
             "look up a recipe for soup", "book a table for two"),
            ("tomorrow", "tonight", "right now", "in ten minutes", "this afternoon",
             "on Monday", "after dinner", "before noon"),
        ),
    ),
    (
        "There is a {} {} {}.",
        (
            ("small", "large", "quiet", "busy", "very old", "new", "strange", "lovely",
             "noisy", "cheap"),
            ("cafe", "park", "bridge", "market", "school", "garden", "bakery", "hotel",
             "library", "beach", "shop", "church"),
            ("near my house", "behind the station", "in the town centre", "next to the bank",
             "across the road", "on our street", "by the lake", "at the end of the road"),
        ),
    ),
    (
        "We will {} {}.",
        (
            ("go to the beach", "visit our grandparents", "paint the fence",
             "watch the football", "take the early bus", "have a picnic", "clean the attic",
             "plant some roses", "walk the dog", "fly to Spain", "ride our bikes",
             "play cards"),
            ("tomorrow", "next week", "on Saturday", "after school", "in the morning",
             "this weekend", "at eight", "next summer", "later today", "on Friday"),
        ),
    ),
)


def read_sentences() -> List[str]:
    """Every sentence of the read-speech grammar, distinct, in a fixed order.

    Each template's sentences are shuffled (seeded), then the templates take turns until each
    runs out, so any prefix holds every template equally and the held-out sentences of a split
    are new combinations of words seen in training.
    """
    emotional = {text for pairs in SENTENCES.values() for text, _ in pairs}
    rng = random.Random(13)
    per_template = []
    for pattern, slots in READ_TEMPLATES:
        sentences = [pattern.format(*choice) for choice in itertools.product(*slots)]
        rng.shuffle(sentences)
        per_template.append([s for s in sentences if s not in emotional])
    mixed = itertools.chain.from_iterable(itertools.zip_longest(*per_template))
    return list(dict.fromkeys(s for s in mixed if s is not None))
