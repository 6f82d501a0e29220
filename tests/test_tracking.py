from prompt_vs_finetune.tracking.runs import MAX_PARAM_CHARS, flatten


def test_flatten_nested_config_into_mlflow_safe_params():
    flat = flatten({"arm": {"lora": {"r": 8, "target_modules": ["c_attn", "c_fc"]}},
                    "task": {"labels": {"reverted_card_payment?": "reverted card payment"}},
                    "template": "x" * (MAX_PARAM_CHARS + 10), "empty": {}, "none": None})
    assert flat["arm.lora.r"] == "8"
    assert flat["arm.lora.target_modules"] == "['c_attn', 'c_fc']"
    assert flat["task.labels.reverted_card_payment_"] == "reverted card payment"
    assert len(flat["template"]) == MAX_PARAM_CHARS and flat["template"].endswith("...")
    assert flat["empty"] == "{}" and flat["none"] == "None"


def test_secrets_in_urls_are_redacted_at_any_depth():
    from prompt_vs_finetune.tracking.secrets import redact

    config = {"model": {"api": {"base_url": "https://gw.example/v1?api_key=sk-1&region=eu",
                                "api_key_env": "OPENAI_API_KEY"}},
              "mlflow": {"tracking_uri": "https://bob:pw@mlflow.example"},
              "notes": ["https://x.example/?token=t0k&a=1#top", "key=not-a-url-query"]}
    clean = redact(config)
    assert clean["model"]["api"]["base_url"] == "https://gw.example/v1?api_key=***&region=eu"
    assert clean["model"]["api"]["api_key_env"] == "OPENAI_API_KEY"  # a name, not a secret
    assert clean["mlflow"]["tracking_uri"] == "https://bob:***@mlflow.example"
    assert clean["notes"] == ["https://x.example/?token=***&a=1#top", "key=not-a-url-query"]
