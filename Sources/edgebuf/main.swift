print("edgebuf")
