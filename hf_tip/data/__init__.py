"""Where data enters: datasets, image folders, class checks, few-shot sampling and prompt templates."""
