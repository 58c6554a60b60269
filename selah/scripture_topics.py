"""The verses shown for each catalogue theme and concern: chosen because they speak to it.

The checkpoint's own table (`manifest["scripture"]`, the references that most often accompanied a
theme in the training labels) mixes in whatever the labeller cited for the whole song: it showed
Profanity with Ephesians 5:3 (sexual immorality) and Peace & Rest with Proverbs 4:23. This table
is written by hand instead, and checked: each reference's American Standard Version text holds at
least one of its theme's `TOPIC_WORDS` (`tests/selah/test_scripture_topics.py`), so a concern's
verse is about that concern. Rendering uses it first and the checkpoint's table only for a theme
missing here.
"""

# theme -> references, best first (canonical form, as `selah.scripture.canonical_reference`).
THEME_SCRIPTURE: dict[str, tuple[str, ...]] = {
    "Gospel Message": ("John 3:16", "Romans 5:8", "1 Corinthians 15:3-4"),
    "Worship & Adoration": ("Psalm 95:6", "John 4:24", "Psalm 29:2"),
    "God's Love & Grace": ("Ephesians 2:8-9", "1 John 4:9-10", "Romans 8:38-39"),
    "Redemption Story": ("Ephesians 1:7", "Colossians 1:13-14", "Titus 2:14"),
    "God's Sovereignty": ("Psalm 115:3", "Isaiah 46:9-10", "Daniel 4:35"),
    "Victory in Christ": ("1 Corinthians 15:57", "Romans 8:37", "1 John 5:4"),
    "Faith & Trust": ("Proverbs 3:5-6", "Hebrews 11:1", "Psalm 56:3"),
    "Hope & Encouragement": ("Romans 15:13", "Jeremiah 29:11", "Isaiah 40:31"),
    "Prayer & Intimacy": ("Philippians 4:6", "Matthew 6:6", "Psalm 145:18"),
    "Love for Others": ("John 13:34", "1 John 4:7", "1 Corinthians 13:4"),
    "Perseverance & Endurance": ("James 1:12", "Galatians 6:9", "Hebrews 12:1"),
    "Gratitude & Thanksgiving": ("1 Thessalonians 5:18", "Psalm 100:4", "Colossians 3:17"),
    "Courage & Boldness": ("Joshua 1:9", "2 Timothy 1:7", "Psalm 27:1"),
    "Holiness & Righteousness": ("1 Peter 1:15-16", "Hebrews 12:14", "Isaiah 6:3"),
    "Repentance & Humility": ("1 John 1:9", "Acts 3:19", "James 4:10"),
    "Self-Control & Discipline": ("Proverbs 25:28", "1 Corinthians 9:25", "Titus 2:11-12"),
    "Wisdom & Discernment": ("James 1:5", "Proverbs 9:10", "Philippians 1:9-10"),
    "Justice & Compassion": ("Micah 6:8", "Isaiah 1:17", "Zechariah 7:9"),
    "Peace & Rest": ("Matthew 11:28", "John 14:27", "Philippians 4:7"),
    "Lament & Grief": ("Psalm 34:18", "Psalm 13:1", "Matthew 5:4"),
    "Community & Fellowship": ("Hebrews 10:24-25", "Acts 2:42", "Galatians 6:2"),
    "Joy & Celebration": ("Philippians 4:4", "Psalm 16:11", "Nehemiah 8:10"),
    "Family & Covenant": ("Joshua 24:15", "Ephesians 6:4", "Proverbs 22:6"),
    "Creation & Wonder": ("Psalm 19:1", "Genesis 1:1", "Psalm 104:24"),
    "Scripture References": ("2 Timothy 3:16", "Psalm 119:105", "Hebrews 4:12"),
    "Self-Reflection": ("Psalm 139:23-24", "Lamentations 3:40", "2 Corinthians 13:5"),
    "Personal Growth": ("2 Peter 3:18", "Philippians 1:6", "Romans 12:2"),
    "Self-Acceptance": ("Psalm 139:14", "Ephesians 2:10", "Genesis 1:27"),
    "Spiritual Seeking": ("Jeremiah 29:13", "Matthew 7:7", "Acts 17:27"),
    "Vague Spirituality": ("John 14:6", "Acts 4:12", "1 John 4:1"),
    "Idolatry": ("Exodus 20:3-4", "1 John 5:21", "1 Corinthians 10:14"),
    "Humanistic Philosophy": ("Proverbs 14:12", "Jeremiah 17:5", "Colossians 2:8"),
    "Sexual Immorality": ("1 Corinthians 6:18", "1 Thessalonians 4:3", "Hebrews 13:4"),
    "Trivializing Sin": ("Romans 6:23", "Isaiah 5:20", "Romans 6:1-2"),
    "Profanity": ("Ephesians 4:29", "Colossians 3:8", "James 3:10"),
    "Violence/Revenge": ("Romans 12:19", "Matthew 5:39", "Proverbs 3:31"),
    "Substance Abuse": ("Ephesians 5:18", "Proverbs 20:1", "Proverbs 23:20"),
    "Pride/Arrogance": ("Proverbs 16:18", "James 4:6", "Philippians 2:3"),
    "Greed/Materialism": ("1 Timothy 6:10", "Matthew 6:19-20", "Hebrews 13:5"),
    "Theological Error": ("Galatians 1:8", "2 Timothy 4:3", "1 John 4:1"),
    "Deception/Manipulation": ("Proverbs 12:22", "Ephesians 4:25", "Colossians 3:9"),
    "Despair": ("Psalm 42:11", "2 Corinthians 4:8-9", "Lamentations 3:21-22"),
    "Anxiety/Fear without Hope": ("Philippians 4:6", "1 Peter 5:7", "Matthew 6:34"),
    "Occult/Witchcraft": ("Deuteronomy 18:10-11", "Leviticus 19:31", "Galatians 5:19-20"),
    "Anger/Bitterness": ("Ephesians 4:31-32", "James 1:19-20", "Proverbs 15:1"),
    "Blasphemy": ("Exodus 20:7", "Leviticus 24:16", "Matthew 12:31"),
    "Apostasy": ("Hebrews 3:12", "Hebrews 10:38-39", "2 Timothy 4:10"),
    "Suicidal Ideation": ("Psalm 34:18", "Deuteronomy 30:19", "Psalm 42:11"),
}

# theme -> words (lower case, matched as word starts) one of which each of its references' ASV
# text must hold: what makes a verse speak to the theme.
TOPIC_WORDS: dict[str, tuple[str, ...]] = {
    "Gospel Message": ("gave", "died", "sins", "saved", "everlasting life"),
    "Worship & Adoration": ("worship", "bow", "glory", "praise", "kneel"),
    "God's Love & Grace": ("grace", "love"),
    "Redemption Story": ("redemption", "redeem", "delivered", "forgiveness"),
    "God's Sovereignty": ("pleased", "counsel", "pleasure", "will", "doeth"),
    "Victory in Christ": ("victory", "conquerors", "overcometh"),
    "Faith & Trust": ("trust", "faith"),
    "Hope & Encouragement": ("hope", "renew", "strength"),
    "Prayer & Intimacy": ("pray", "supplication", "call upon", "requests"),
    "Love for Others": ("love",),
    "Perseverance & Endurance": ("endure", "patience", "weary", "faint"),
    "Gratitude & Thanksgiving": ("thank",),
    "Courage & Boldness": ("courage", "fearful", "fear", "afraid"),
    "Holiness & Righteousness": ("holy", "sanctification"),
    "Repentance & Humility": ("confess", "repent", "humble"),
    "Self-Control & Discipline": ("restraint", "self-control", "denying", "soberly"),
    "Wisdom & Discernment": ("wisdom", "discern", "knowledge"),
    "Justice & Compassion": ("justly", "justice", "compassion", "oppressed", "mercy"),
    "Peace & Rest": ("rest", "peace"),
    "Lament & Grief": ("broken heart", "mourn", "how long", "contrite"),
    "Community & Fellowship": ("fellowship", "one another", "assembling", "burdens"),
    "Joy & Celebration": ("rejoice", "joy"),
    "Family & Covenant": ("house", "children", "child"),
    "Creation & Wonder": ("heavens", "created", "works", "handiwork"),
    "Scripture References": ("scripture", "word"),
    "Self-Reflection": ("search", "examine", "try me", "prove"),
    "Personal Growth": ("grow", "perfect", "transformed", "renewing"),
    "Self-Acceptance": ("made", "workmanship", "created"),
    "Spiritual Seeking": ("seek", "find"),
    "Vague Spirituality": ("the way", "name", "spirits", "salvation"),
    "Idolatry": ("gods", "idols", "idolatry", "graven"),
    "Humanistic Philosophy": ("man", "philosophy", "right unto"),
    "Sexual Immorality": ("fornication", "sanctification", "marriage", "adulterers"),
    "Trivializing Sin": ("sin", "evil"),
    "Profanity": ("mouth", "speech", "corrupt", "cursing", "shameful"),
    "Violence/Revenge": ("avenge", "vengeance", "resist", "smite", "violence"),
    "Substance Abuse": ("wine", "drunk", "strong drink", "winebibbers"),
    "Pride/Arrogance": ("pride", "proud", "vainglory", "lowliness"),
    "Greed/Materialism": ("money", "treasure", "covetous"),
    "Theological Error": ("gospel", "doctrine", "spirits", "teachers"),
    "Deception/Manipulation": ("lying", "falsehood", "lie"),
    "Despair": ("despair", "cast down", "hope", "perplexed"),
    "Anxiety/Fear without Hope": ("anxious", "anxiety", "care", "thought for the morrow"),
    "Occult/Witchcraft": ("divination", "sorcery", "sorcerer", "witchcraft", "familiar spirits",
                          "enchanter"),
    "Anger/Bitterness": ("anger", "wrath", "bitterness"),
    "Blasphemy": ("name", "vain", "blasphemy", "blasphemeth"),
    "Apostasy": ("falling away", "draw back", "shrink back", "forsook", "depart"),
    "Suicidal Ideation": ("life", "saveth", "broken heart", "hope"),
}


def references_for(theme: str, fallback: dict[str, list[str]] | None = None) -> tuple[str, ...]:
    """The references shown for a theme: this table's, else the fallback table's (a
    checkpoint's), else none."""
    if theme in THEME_SCRIPTURE:
        return THEME_SCRIPTURE[theme]
    return tuple((fallback or {}).get(theme, ()))
