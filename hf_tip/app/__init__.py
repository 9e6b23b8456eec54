"""The interactive app (Gradio) and what it shows: the explanation of a prediction."""
