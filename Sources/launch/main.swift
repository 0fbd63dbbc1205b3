print("launch")
