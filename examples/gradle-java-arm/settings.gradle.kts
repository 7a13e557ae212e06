rootProject.name = "moj-obraz"
