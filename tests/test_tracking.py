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
