"""Face engine: detect -> landmarks -> align -> quality -> embed."""
