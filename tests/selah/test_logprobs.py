"""selah.logprobs: the token that holds a JSON value's first character, and its alternatives."""

from selah.logprobs import value_alternatives

TEXT = '{"verdict": "caution_limit", "lament": true}'


def tokens(*pieces, alternatives=None):
    return [{"token": p, "top_logprobs": (alternatives or {}).get(i, [])}
            for i, p in enumerate(pieces)]


def test_a_value_that_starts_a_token_has_an_empty_prefix():
    toks = tokens('{"', "verdict", '":', ' "', "ca", "ution", "_limit", '",', ' "lament', '":',
                  " true", "}", alternatives={4: [{"token": "ca", "logprob": -0.1}]})
    assert value_alternatives(TEXT, toks, "verdict") == ("", [{"token": "ca", "logprob": -0.1}])


def test_a_value_inside_a_token_keeps_the_text_before_it():
    toks = tokens('{"', "verdict", '": "ca', "ution_limit", '",', ' "lament', '": true', "}",
                  alternatives={2: [{"token": '": "fr', "logprob": -2.0}]})
    prefix, alternatives = value_alternatives(TEXT, toks, "verdict")
    assert prefix == '": "' and alternatives == [{"token": '": "fr', "logprob": -2.0}]
    prefix, _ = value_alternatives(TEXT, toks, "lament", quoted=False)
    assert prefix == '": '


def test_no_key_or_tokens_that_do_not_spell_the_text_give_none():
    assert value_alternatives(TEXT, tokens(TEXT), "score") is None
    assert value_alternatives(TEXT, tokens('{"other'), "verdict") is None
    assert value_alternatives(TEXT, [{"bytes": [123]}], "verdict") is None
