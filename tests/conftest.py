import os

# No network here: LiteLLM must use its bundled cost map instead of fetching one at import.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
